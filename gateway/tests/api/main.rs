//! REST API tests over HTTP against a real server: its own database, its own
//! JetStream stream, real NATS and Postgres (see `helpers::spawn_app`).

mod analytics;
mod audit;
mod auth;
mod bad_input;
mod calendar;
mod cluster;
mod contacts;
mod durability;
mod email;
mod email_sink;
mod helpers;
mod invitations;
mod limits;
mod notifications;
mod observability;
mod openapi;
mod push;
mod read_your_writes;
mod recording;
mod recovery;
mod registration;
mod reminders;
mod rooms;
mod rooms_host;
mod schedule;
mod settings;
mod slow_clients;
mod stale_read_models;
mod storable_input;
mod users;
mod webhooks;
mod ws;
