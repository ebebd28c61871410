//! Who asked for a command and why: the envelope fields that do not come from the
//! aggregate.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Metadata of one command. `command_id` becomes the message's `Nats-Msg-Id`: a
/// client that retries a command with the same id gets it stored once.
#[derive(Clone, Debug)]
pub struct CommandMetadata {
    pub command_id: Uuid,
    /// The acting user's id; `None` when the system acts on its own.
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    /// W3C trace context (`traceparent`, `tracestate`) to carry in NATS headers.
    pub trace_context: Vec<(String, String)>,
    /// The command id was derived from a client's idempotency key: the same
    /// request sent again carries the same id, so a command refused on the
    /// aggregate's current state may be the retry of one already stored.
    pub from_client_key: bool,
    /// Set only by the history generator (`crate::generate`): the simulated time
    /// the command happened at. Its events carry this timestamp instead of the
    /// time of writing, and ids derived from the command id instead of random
    /// ones, so the same plan always stores the same events.
    pub simulated_at: Option<DateTime<Utc>>,
}

impl CommandMetadata {
    /// A command with a fresh id on behalf of `actor`.
    pub fn by(actor: impl Into<String>) -> Self {
        Self { actor: Some(actor.into()), ..Self::system() }
    }

    /// A command the system issues on its own.
    pub fn system() -> Self {
        Self {
            command_id: Uuid::new_v4(),
            actor: None,
            correlation_id: None,
            trace_context: Vec::new(),
            from_client_key: false,
            simulated_at: None,
        }
    }

    pub fn with_command_id(mut self, command_id: Uuid) -> Self {
        self.command_id = command_id;
        self
    }

    /// The command id of a request the client may send again (see
    /// `from_client_key`).
    pub fn with_client_key(mut self, command_id: Uuid) -> Self {
        self.command_id = command_id;
        self.from_client_key = true;
        self
    }

    /// A command of a generated history, happening at `at`; see `simulated_at`.
    pub fn simulated_at(mut self, at: DateTime<Utc>) -> Self {
        self.simulated_at = Some(at);
        self
    }

    pub fn with_correlation_id(mut self, correlation_id: impl Into<String>) -> Self {
        self.correlation_id = Some(correlation_id.into());
        self
    }

    pub fn with_trace_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.trace_context.push((name.to_string(), value.into()));
        self
    }
}
