//! Writes with read-your-writes: a command's answer waits until the read models
//! that show its effect have applied its events, so a client that creates a room
//! and then lists rooms sees it.

use rapat_commands::{CommandBus, CommandError, CommandMetadata, CommandOutcome, StoredAggregate, deadline};
use rapat_domain::envelope::Upcast;
use rapat_projections::Projection;

use crate::error::{ApiError, DomainRejection};
use crate::idempotency;
use crate::state::AppState;

/// The read models an aggregate type's events show up in.
fn visible_in(aggregate_type: &str) -> &'static [Projection] {
    match aggregate_type {
        "account" => &[Projection::Accounts, Projection::Audit],
        "session" => &[Projection::Sessions],
        "contacts" => &[Projection::Contacts, Projection::Audit],
        "room" => &[Projection::Rooms, Projection::Audit],
        "invitation" => &[Projection::Invitations, Projection::Audit],
        "settings" => &[Projection::Settings, Projection::Audit],
        "inbox" => &[Projection::Notifications],
        "webhook" => &[Projection::Webhooks, Projection::Audit],
        "push" => &[Projection::PushSubscriptions, Projection::Audit],
        _ => &[],
    }
}

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
        let projections = visible_in(aggregate_type);
        if !projections.is_empty() && stream_sequence > 0 {
            let wait = deadline::bounded(self.config.read_your_writes_timeout);
            if let Err(timeout) = self.positions.wait_for(projections, stream_sequence, wait).await {
                tracing::info!(%timeout, sequence = stream_sequence, "stored, but the read models lag");
                return Err(ApiError::stored_not_visible());
            }
        }
        Ok(())
    }
}
