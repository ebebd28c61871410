//! Each projection's position in the stream. Postgres is its truth: the position is
//! written in the same transaction as the read-model change it stands for.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};

use super::Projection;
use crate::sql::{to_i64, to_u64};

/// Channel on which every checkpoint change is announced, as `<projection>:<seq>`.
pub const CHECKPOINT_CHANNEL: &str = "rapat_checkpoints";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub projection: Projection,
    /// Stream sequence of the last message applied (or parked); 0 before any.
    pub last_sequence: u64,
    /// Events applied since the projection last started from scratch.
    pub applied_events: u64,
    pub updated_at: DateTime<Utc>,
}

/// The projection's checkpoint, creating its row at 0 when missing.
pub async fn load_checkpoint(pool: &PgPool, projection: Projection) -> Result<Checkpoint, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    ensure_row(&mut connection, projection).await?;
    let row = sqlx::query(
        "SELECT last_sequence, applied_events, updated_at FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(projection.name())
    .fetch_one(&mut *connection)
    .await?;
    Ok(Checkpoint {
        projection,
        last_sequence: to_u64(row.try_get("last_sequence")?),
        applied_events: to_u64(row.try_get("applied_events")?),
        updated_at: row.try_get("updated_at")?,
    })
}

pub(crate) async fn ensure_row(connection: &mut PgConnection, projection: Projection) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO projection_checkpoints (projection) VALUES ($1) ON CONFLICT (projection) DO NOTHING")
        .bind(projection.name())
        .execute(connection)
        .await?;
    Ok(())
}

/// Locks the checkpoint row for the rest of the transaction and returns its
/// last sequence. Batches of two overlapping instances, and a rebuild's switch,
/// queue on this row lock, so each sees what the one before it committed.
pub(crate) async fn lock_for_batch(tx: &mut PgConnection, projection: Projection) -> Result<u64, sqlx::Error> {
    let last: i64 = sqlx::query_scalar("SELECT last_sequence FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
        .bind(projection.name())
        .fetch_one(tx)
        .await?;
    Ok(to_u64(last))
}

/// Moves the checkpoint to `last_sequence` and announces it; both take effect when
/// the transaction commits.
pub(crate) async fn advance(
    tx: &mut PgConnection,
    projection: Projection,
    last_sequence: u64,
    applied_events: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints \
         SET last_sequence = $2, applied_events = applied_events + $3, updated_at = now() \
         WHERE projection = $1",
    )
    .bind(projection.name())
    .bind(to_i64(last_sequence))
    .bind(to_i64(applied_events))
    .execute(&mut *tx)
    .await?;
    notify(tx, projection, last_sequence).await
}

/// Leaves the checkpoint at the position a rebuilt read model was built through,
/// in the transaction that puts that read model in place (and that holds the row
/// lock). A running projector goes on from here, on the new
/// tables, skipping what the rebuild already applied.
pub(crate) async fn set_rebuilt(
    tx: &mut PgConnection,
    projection: Projection,
    last_sequence: u64,
    applied_events: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints SET last_sequence = $2, applied_events = $3, updated_at = now() \
         WHERE projection = $1",
    )
    .bind(projection.name())
    .bind(to_i64(last_sequence))
    .bind(to_i64(applied_events))
    .execute(&mut *tx)
    .await?;
    notify(tx, projection, last_sequence).await
}

async fn notify(tx: &mut PgConnection, projection: Projection, sequence: u64) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHECKPOINT_CHANNEL)
        .bind(format!("{}:{sequence}", projection.name()))
        .execute(tx)
        .await?;
    Ok(())
}

