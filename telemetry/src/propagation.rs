//! W3C trace context in and out of HTTP and NATS headers.

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The current span's trace context as header pairs (`traceparent`,
/// `tracestate`), for the messages a command appends; empty when telemetry is off.
pub fn current_trace_headers() -> Vec<(String, String)> {
    let context = tracing::Span::current().context();
    let mut pairs = Pairs(Vec::new());
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut pairs));
    pairs.0
}

/// Makes `span` a child of the trace carried in a NATS message's headers, if any.
pub fn continue_nats_trace(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    let Some(headers) = headers.filter(|headers| headers.get("traceparent").is_some()) else { return };
    continue_from(span, &NatsHeaders(headers));
}

/// Makes `span` a child of the trace an HTTP request carries, if any.
pub fn continue_http_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if headers.contains_key("traceparent") {
        continue_from(span, &HttpHeaders(headers));
    }
}

fn continue_from(span: &tracing::Span, carrier: &dyn Extractor) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(carrier));
    // Fails only for a disabled span or one already started: it then stays a root.
    let _ = span.set_parent(parent);
}

struct Pairs(Vec<(String, String)>);

impl Injector for Pairs {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

struct NatsHeaders<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

struct HttpHeaders<'a>(&'a http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
