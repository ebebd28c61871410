//! The fault suite (SPEC §8): each test starts its own NATS (a NATS >= 2.10
//! that writes to disk before it acknowledges, from `RAPAT_TEST_NATS_SERVER`),
//! its own Postgres and `rapat serve`, drives writes from several users, injects
//! one fault, then proves from an export of the stream and from the read models
//! that no acknowledged write was lost, none was applied twice, none answered as
//! failed was stored, and the read models did not fork; it prints the figures.
//!
//! The tests are ignored in the ordinary run (they take minutes and kill
//! processes): `infra/run-tests.sh` runs them one at a time as a step of its
//! own, `RAPAT_SKIP_FAULTS=1` skips it. One fault by hand:
//!
//! ```text
//! cargo nextest run -p rapat --test faults --run-ignored only --no-capture nats_kill
//! ```

mod http;
mod load;
mod rapat;
mod report;
mod run;
mod stack;
mod verify;

mod cluster_node;
mod nats_down;
mod nats_kill;
mod postgres_stop;
mod rapat_kill;
mod tail_loss;
