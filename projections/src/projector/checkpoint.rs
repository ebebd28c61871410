//! Each projection's position in the stream. Postgres is its truth: the position is
//! written in the same transaction as the read-model change it stands for.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row};

use super::Projection;
use super::stream_check::MessageMark;
use crate::sql::{to_i64, to_u64};

/// Channel on which every checkpoint change is announced, as `<projection>:<seq>`,
/// or `<projection>:mismatch` when its position no longer stands for the stream.
pub const CHECKPOINT_CHANNEL: &str = "rapat_checkpoints";

/// The notification payload's second half for a projection with a stream mismatch.
pub(crate) const MISMATCH: &str = "mismatch";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub projection: Projection,
    /// Stream sequence of the last message applied (or parked); 0 before any.
    pub last_sequence: u64,
    /// Events applied since the projection last started from scratch.
    pub applied_events: u64,
    pub updated_at: DateTime<Utc>,
    /// Creation time (ns) of the stream the checkpoint was written against.
    pub stream_created_ns: Option<i64>,
    /// The message at `last_sequence`, as the projection applied it.
    pub last_message: Option<MessageMark>,
    /// Set while the read model is known to hold messages the stream lost; cleared
    /// by the rebuild that replaces it.
    pub stream_mismatch: Option<String>,
}

/// A checkpoint's columns, read by `load_checkpoint` and by the batches' row lock.
const COLUMNS: &str = "last_sequence, applied_events, updated_at, stream_created_ns, last_message_id, \
                       last_published_ns, stream_mismatch";

/// The projection's checkpoint, creating its row at 0 when missing.
pub async fn load_checkpoint(pool: &PgPool, projection: Projection) -> Result<Checkpoint, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    ensure_row(&mut connection, projection).await?;
    let sql = format!("SELECT {COLUMNS} FROM projection_checkpoints WHERE projection = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(projection.name()).fetch_one(&mut *connection).await?;
    checkpoint_from(projection, &row)
}

fn checkpoint_from(projection: Projection, row: &sqlx::postgres::PgRow) -> Result<Checkpoint, sqlx::Error> {
    let last_sequence = to_u64(row.try_get("last_sequence")?);
    let published: Option<i64> = row.try_get("last_published_ns")?;
    let message_id: Option<String> = row.try_get("last_message_id")?;
    Ok(Checkpoint {
        projection,
        last_sequence,
        applied_events: to_u64(row.try_get("applied_events")?),
        updated_at: row.try_get("updated_at")?,
        stream_created_ns: row.try_get("stream_created_ns")?,
        last_message: published.map(|published_ns| MessageMark { sequence: last_sequence, message_id, published_ns }),
        stream_mismatch: row.try_get("stream_mismatch")?,
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
    let last: i64 =
        sqlx::query_scalar("SELECT last_sequence FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
            .bind(projection.name())
            .fetch_one(tx)
            .await?;
    Ok(to_u64(last))
}

/// Moves the checkpoint to `last`, the message that the batch applied (or parked)
/// last in the stream created at `stream_created_ns`, when the transaction commits.
/// The caller announces it after the commit (`announce`).
pub(crate) async fn advance(
    tx: &mut PgConnection,
    projection: Projection,
    last: &MessageMark,
    stream_created_ns: i64,
    applied_events: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints \
         SET last_sequence = $2, applied_events = applied_events + $3, updated_at = now(), \
         stream_created_ns = $4, last_message_id = $5, last_published_ns = $6 \
         WHERE projection = $1",
    )
    .bind(projection.name())
    .bind(to_i64(last.sequence))
    .bind(to_i64(applied_events))
    .bind(stream_created_ns)
    .bind(last.message_id.as_deref())
    .bind(last.published_ns)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Announces the projection's committed checkpoint on `CHECKPOINT_CHANNEL`, after
/// the batch's commit rather than in it: a transaction that NOTIFYs holds a lock
/// shared by the whole Postgres cluster from its commit until its WAL flush is
/// done, so the batches of every projection (and of every database) committed one
/// at a time, each waiting for its own flush (pgbench here, 5 writers: 255–394
/// commits/s with a NOTIFY in each, 509–979 without). This one flushes nothing
/// (a wake-up need not survive a crash: the follower also reloads every 100 ms).
/// It reads the row under a share lock, so a rebuild or a mismatch cannot commit
/// between the read and this notification: announcements stay in commit order, and
/// a stale position is never announced after a newer one.
pub(crate) async fn announce(pool: &PgPool, projection: Projection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('synchronous_commit', 'off', true), \
                pg_notify($1, projection || ':' || CASE WHEN stream_mismatch IS NULL THEN last_sequence::text ELSE $2 END) \
         FROM projection_checkpoints WHERE projection = $3 FOR SHARE",
    )
    .bind(CHECKPOINT_CHANNEL)
    .bind(MISMATCH)
    .bind(projection.name())
    .execute(pool)
    .await?;
    Ok(())
}

/// Leaves the checkpoint at the position a rebuilt read model was built through
/// (`last`, the last message it applied, of the stream created at
/// `stream_created_ns`; `None` when there was none), in the transaction that puts
/// that read model in place (and that holds the row lock). A running projector goes
/// on from here, on the new tables, skipping what the rebuild already applied. A
/// stream mismatch is over: the new read model holds only what the stream holds.
pub(crate) async fn set_rebuilt(
    tx: &mut PgConnection,
    projection: Projection,
    last: Option<&MessageMark>,
    stream_created_ns: i64,
    applied_events: u64,
) -> Result<(), sqlx::Error> {
    let last_sequence = last.map_or(0, |last| last.sequence);
    sqlx::query(
        "UPDATE projection_checkpoints SET last_sequence = $2, applied_events = $3, updated_at = now(), \
         stream_created_ns = $4, last_message_id = $5, last_published_ns = $6, stream_mismatch = NULL \
         WHERE projection = $1",
    )
    .bind(projection.name())
    .bind(to_i64(last_sequence))
    .bind(to_i64(applied_events))
    .bind(stream_created_ns)
    .bind(last.and_then(|last| last.message_id.as_deref()))
    .bind(last.map(|last| last.published_ns))
    .execute(&mut *tx)
    .await?;
    notify(tx, projection, last_sequence).await
}

/// Records that the projection's read model holds messages the stream no longer
/// has, and announces it (`<projection>:mismatch`) so that read-your-writes waits
/// stop trusting its position at once. Returns false if it was recorded already.
pub(crate) async fn mark_mismatch(pool: &PgPool, projection: Projection, why: &str) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let marked = sqlx::query(
        "UPDATE projection_checkpoints SET stream_mismatch = $2, updated_at = now() \
         WHERE projection = $1 AND stream_mismatch IS NULL",
    )
    .bind(projection.name())
    .bind(why)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHECKPOINT_CHANNEL)
        .bind(format!("{}:{MISMATCH}", projection.name()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(marked)
}

async fn notify(tx: &mut PgConnection, projection: Projection, sequence: u64) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHECKPOINT_CHANNEL)
        .bind(format!("{}:{sequence}", projection.name()))
        .execute(tx)
        .await?;
    Ok(())
}
