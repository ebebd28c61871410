//! OpenTelemetry for rapat.
//!
//! A trace starts at an HTTP request (continuing the caller's `traceparent`),
//! travels in the headers of the event messages its command appends, and
//! continues in whoever consumes them: the projector, the SFU, other gateways.
//! `propagation.rs` does both directions; `exporter.rs` (feature `exporter`,
//! for the binary) installs the OTLP exporter and the W3C propagator. Without
//! them every function here is a no-op, so libraries call them unconditionally.

mod propagation;

#[cfg(feature = "exporter")]
mod exporter;

pub use propagation::{continue_http_trace, continue_nats_trace, current_trace_headers};

#[cfg(feature = "exporter")]
pub use exporter::{LogFormat, Telemetry, TelemetryError, init};
