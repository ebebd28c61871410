//! The projector's own state, for readiness reports.

use sqlx::PgPool;

use super::QueryError;

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
