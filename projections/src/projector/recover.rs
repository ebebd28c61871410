//! Recovering a projection whose read model holds messages the stream no longer
//! has (see `stream_check.rs`): record it, say it loudly, rebuild from the stream.

use async_nats::jetstream;
use sqlx::PgPool;

use super::checkpoint::mark_mismatch;
use super::{Projection, ProjectorConfig, ProjectorError};
use crate::rebuild::{RebuildError, rebuild};

/// Marks the projection's checkpoint as mismatched (so read-your-writes waits and
/// `/readyz` stop trusting it, in every process), then replaces its read model by
/// one rebuilt from the stream as it is now. The caller holds the projection's
/// lock, so no batch is applied meanwhile; the live tables keep serving (stale)
/// reads until the switch. On success the checkpoint is the rebuild's position and
/// the mark is gone; on failure the mark stays and the next start tries again.
pub(crate) async fn recover_from_mismatch(
    pool: &PgPool,
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    projection: Projection,
    why: &str,
) -> Result<(), ProjectorError> {
    let name = projection.name();
    let newly_found = mark_mismatch(pool, projection, why).await?;
    metrics::gauge!("rapat_projection_stream_mismatch", "projection" => name).set(1.0);
    if newly_found {
        metrics::counter!("rapat_projection_stream_mismatches_total", "projection" => name).increment(1);
        tracing::error!(
            %projection,
            mismatch = why,
            "the read model has applied messages the event stream no longer holds; rebuilding it from the stream \
             instead of skipping new events as applied"
        );
    } else {
        // Found before: by a process that died, or by this one before a failed try
        // (whose error the caller logs).
        tracing::debug!(%projection, mismatch = why, "rebuilding the read model from the stream after a stream mismatch");
    }
    let report = rebuild(pool, jetstream, config, projection, |_| {}).await.map_err(|error| match error {
        RebuildError::Database(error) => ProjectorError::Database(error),
        other => ProjectorError::Nats(format!("rebuilding after a stream mismatch: {other}")),
    })?;
    metrics::gauge!("rapat_projection_stream_mismatch", "projection" => name).set(0.0);
    tracing::info!(
        %projection,
        switched_at = report.switched_at_sequence,
        events = report.events,
        elapsed = ?report.elapsed,
        "read model rebuilt from the stream after a stream mismatch; projecting from there"
    );
    Ok(())
}
