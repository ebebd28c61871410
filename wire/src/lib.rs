//! The names and messages rapat's processes agree on over NATS.
//!
//! Every stream, subject, key-value bucket and durable consumer is named by
//! [`Namespace`]; nothing else in the tree builds a NATS name by hand, so a
//! renamed subject is one change here and a compile error everywhere it is used.
//! [`signal`] holds the messages and header of the gateway ↔ SFU contract.

mod namespace;
pub mod signal;

pub use namespace::{InvalidNamespace, Namespace};
