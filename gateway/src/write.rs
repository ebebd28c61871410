//! Writes with read-your-writes (SPEC §2): a command's answer waits until the read
//! model that shows its effect has applied its events, so a client that creates a
//! room and then lists rooms sees it.
//!
//! The audit trail shows every write too, but no write waits for it: the audit
//! queries wait instead (`wait_audit_current`), until the audit trail has applied
//! everything the read models the writes wait for have applied. A write answered
//! before an audit query began is then in the trail that query reads, and the many
//! writes pay nothing for the few audit reads.

use rapat_commands::{CommandBus, CommandError, CommandMetadata, CommandOutcome, StoredAggregate, deadline};
use rapat_domain::envelope::Upcast;
use rapat_projections::projector::read_models_of;
use rapat_projections::{Projection, queries};

use crate::error::{ApiError, DomainRejection};
use crate::idempotency;
use crate::state::AppState;

/// The read models whose writes the audit trail shows their writers: an audit
/// query waits until the trail has reached the furthest of them. (Sessions and
/// inboxes were never in this promise: their writes are the login and the
/// reading of notifications.)
const AUDITED: [Projection; 7] = [
    Projection::Accounts,
    Projection::Contacts,
    Projection::Rooms,
    Projection::Invitations,
    Projection::Settings,
    Projection::Webhooks,
    Projection::PushSubscriptions,
];

impl AppState {
    /// Runs `command` and waits for its events to be visible to queries.
    ///
    /// The answers tell the truth about the stream: an error other than
    /// `stored_not_visible` means nothing was stored, except `outcome_unknown`
    /// (see `ApiError`), which a retry with the same `Idempotency-Key` settles.
    pub async fn write<A>(
        &self,
        bus: &CommandBus<A>,
        aggregate_id: &str,
        command: A::Command,
        metadata: CommandMetadata,
    ) -> Result<CommandOutcome<A>, ApiError>
    where
        A: StoredAggregate,
        A::Event: Upcast,
        A::Command: Clone + std::fmt::Debug,
        A::Error: DomainRejection,
        CommandError<A::Error>: Into<ApiError>,
    {
        // A keyed request carries its bound key as the command id; each of its
        // commands gets its own id from it.
        let metadata = if metadata.from_client_key {
            let command_id = idempotency::command_id(metadata.command_id, A::TYPE, aggregate_id, &command);
            metadata.with_client_key(command_id)
        } else {
            metadata
        };
        // Stage timing for `benches/rest.rs` (off unless traced).
        tracing::trace!(target: "rapat::latency", aggregate_id, "write");
        let outcome = bus.execute(aggregate_id, command, metadata).await.map_err(Into::into)?;
        tracing::trace!(target: "rapat::latency", aggregate_id, sequence = outcome.stream_sequence, "stored");
        self.wait_visible(A::TYPE, outcome.stream_sequence).await?;
        tracing::trace!(target: "rapat::latency", aggregate_id, sequence = outcome.stream_sequence, "visible");
        Ok(outcome)
    }

    /// Waits until the read models that show `aggregate_type`'s events have
    /// applied the stream up to `stream_sequence` (a write run without `write`,
    /// such as a registration's commands); `stored_not_visible` when they lag.
    pub async fn wait_visible(&self, aggregate_type: &str, stream_sequence: u64) -> Result<(), ApiError> {
        // The projector knows this list too: a batch holding such a write's event
        // is applied at once, the others may linger (`projector/gather.rs`).
        let projections = read_models_of(aggregate_type);
        if !projections.is_empty() && stream_sequence > 0 {
            let wait = deadline::bounded(self.config.read_your_writes_timeout);
            if let Err(timeout) = self.positions.wait_for(projections, stream_sequence, wait).await {
                tracing::info!(%timeout, sequence = stream_sequence, "stored, but the read models lag");
                return Err(ApiError::stored_not_visible());
            }
        }
        Ok(())
    }

    /// Waits until the audit trail shows every write answered so far, by any
    /// gateway: until it has applied the stream as far as the furthest read model
    /// in `AUDITED`. 503 when it lags for longer than a write would wait.
    pub async fn wait_audit_current(&self) -> Result<(), ApiError> {
        let furthest = queries::checkpoints::furthest(&self.db, &AUDITED).await?;
        if furthest == 0 {
            return Ok(());
        }
        let wait = deadline::bounded(self.config.read_your_writes_timeout);
        self.positions
            .wait_for(&[Projection::Audit], furthest, wait)
            .await
            .map_err(|timeout| ApiError::unavailable(format!("the audit trail lags: {timeout}")))
    }
}
