//! Messages the projector parked (see `projector/parking.rs`), for readiness reports.

use std::collections::BTreeMap;

use sqlx::PgPool;

use super::QueryError;

/// How many messages each projection has parked, for projections with any.
pub async fn counts(db: &PgPool) -> Result<BTreeMap<String, u64>, QueryError> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT projection, count(*) FROM parked_events GROUP BY projection ORDER BY projection")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(projection, count)| (projection, u64::try_from(count).unwrap_or(0))).collect())
}
