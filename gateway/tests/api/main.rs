//! REST API tests over HTTP against a real server: its own database, its own
//! JetStream stream, real NATS and Postgres (see `helpers::spawn_app`).

mod helpers;
