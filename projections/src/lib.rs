//! Projections: durable JetStream consumers that build the Postgres read models the
//! REST API queries. Not built yet: this crate is the read side's place in the
//! workspace and arrives with the read-side issue (REST API and read models).
