//! Writes with read-your-writes: a command's answer waits until the read models
//! that show its effect have applied its events, so a client that creates a room
//! and then lists rooms sees it.

use rapat_commands::{CommandBus, CommandError, CommandMetadata, CommandOutcome, StoredAggregate};
use rapat_domain::envelope::Upcast;
use rapat_projections::Projection;

use crate::error::{ApiError, DomainRejection};
use crate::state::AppState;

/// The read models an aggregate type's events show up in.
fn visible_in(aggregate_type: &str) -> &'static [Projection] {
    match aggregate_type {
        "account" => &[Projection::Accounts, Projection::Audit],
        "session" => &[Projection::Sessions],
        "contacts" => &[Projection::Contacts, Projection::Audit],
        "room" => &[Projection::Rooms, Projection::Audit],
        _ => &[],
    }
}

impl AppState {
    /// Runs `command` and waits for its events to be visible to queries.
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
        A::Command: Clone,
        A::Error: DomainRejection,
        CommandError<A::Error>: Into<ApiError>,
    {
        let outcome = bus.execute(aggregate_id, command, metadata).await.map_err(Into::into)?;
        let projections = visible_in(A::TYPE);
        if !projections.is_empty() && outcome.stream_sequence > 0 {
            self.positions
                .wait_for(projections, outcome.stream_sequence, self.config.read_your_writes_timeout)
                .await
                .map_err(|timeout| ApiError::unavailable(format!("read models lag behind: {timeout}")))?;
        }
        Ok(outcome)
    }
}
