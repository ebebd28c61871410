//! rapat's domain: aggregates, the commands they accept, the events they emit and
//! the types those are built from.
//!
//! Everything here is pure. There is no I/O, no async runtime, no NATS and no SQL:
//! the write side (`rapat-commands`) stores events, the read side
//! (`rapat-projections`) builds views from them. Work that needs the outside world
//! (hashing a password) is reached through the traits in [`services`].
//!
//! Domain types parse, they do not validate: a [`room::RoomName`] exists only if it
//! is a valid name, so aggregates never check their inputs twice.

pub mod account;
pub mod contacts;
pub mod credentials;
pub mod envelope;
pub mod ids;
pub mod inbox;
pub mod invitation;
pub mod push;
pub mod room;
pub mod services;
pub mod session;
pub mod settings;
pub mod text;
pub mod webhook;
