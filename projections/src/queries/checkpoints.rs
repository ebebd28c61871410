//! The projector's own state, for readiness reports.

use sqlx::PgPool;

use super::QueryError;
use crate::projector::Projection;
use crate::sql::to_u64;

/// Projections whose read model is known to hold messages the event stream no
/// longer has (its tail was lost, or it was replaced), until their rebuild from
/// the stream is in place. Their reads may show writes that no longer exist and
/// miss new ones.
pub async fn stream_mismatches(db: &PgPool) -> Result<Vec<String>, QueryError> {
    let names = sqlx::query_scalar(
        "SELECT projection FROM projection_checkpoints WHERE stream_mismatch IS NOT NULL ORDER BY projection",
    )
    .fetch_all(db)
    .await?;
    Ok(names)
}

/// The furthest position any of `projections` has applied and committed (0 when
/// none has), leaving out those with a stream mismatch, whose position means
/// nothing on the current stream. Read from the database, not from a gateway's
/// follower, so that it covers writes answered by every gateway.
pub async fn furthest(db: &PgPool, projections: &[Projection]) -> Result<u64, QueryError> {
    let names: Vec<&str> = projections.iter().map(|projection| projection.name()).collect();
    let furthest: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(last_sequence), 0) FROM projection_checkpoints \
         WHERE projection = ANY($1) AND stream_mismatch IS NULL",
    )
    .bind(names)
    .fetch_one(db)
    .await?;
    Ok(to_u64(furthest))
}
