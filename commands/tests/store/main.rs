//! Event store tests against a real NATS server with JetStream. Each test has its
//! own stream, subjects and snapshot bucket (see `support::TestStore`), so tests
//! run in parallel on one server without seeing each other.

mod concurrency;
mod invitations;
mod loading;
mod registration;
mod round_trip;
mod settings;
mod support;
mod unavailable;
