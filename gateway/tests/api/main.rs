//! REST API tests over HTTP against a real server: its own database, its own
//! JetStream stream, real NATS and Postgres (see `helpers::spawn_app`).

mod analytics;
mod audit;
mod auth;
mod bad_input;
mod cluster;
mod contacts;
mod durability;
mod helpers;
mod limits;
mod notifications;
mod observability;
mod openapi;
mod read_your_writes;
mod registration;
mod rooms;
mod rooms_host;
mod schedule;
mod slow_clients;
mod storable_input;
mod users;
mod ws;
