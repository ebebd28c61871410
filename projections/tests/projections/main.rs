//! Projection tests against the real Postgres and NATS (see `support.rs`). One test
//! binary, so the crate links once.

mod analytics;
mod batched;
mod export;
mod faults;
mod invitations;
mod notifications;
mod positions;
mod projector;
mod read_models;
mod rebuild;
mod redaction;
mod story;
mod support;
mod webhooks;
