//! Errors of the write side. `StoreError` is what the event store says;
//! `CommandError` is what a caller of the command bus sees.

/// A failure of the event store itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the aggregate since it was loaded.
    #[error("the aggregate was changed concurrently (expected last subject sequence {expected})")]
    Conflict { expected: u64 },
    /// NATS or the stream cannot be reached; callers answer 503.
    #[error("the event store is unavailable: {reason}")]
    Unavailable { reason: String },
    /// A message was handed to NATS and whether it is stored could not be found
    /// out in time: it may be stored, now or later. Retrying with the same command
    /// id stores it at most once.
    #[error("whether the events were stored is unknown: {reason}")]
    OutcomeUnknown { reason: String },
    /// A stored message cannot be read back: never silently skipped.
    #[error("stored event at stream sequence {sequence} on {subject} is unreadable: {reason}")]
    Corrupt { subject: String, sequence: u64, reason: String },
    /// Aggregate ids become NATS subject tokens, so only `[A-Za-z0-9_-]` is allowed.
    #[error("{0:?} is not a valid aggregate id")]
    InvalidAggregateId(String),
    /// An event could not be turned into its stored form.
    #[error("event could not be encoded: {0}")]
    Encode(String),
}

impl StoreError {
    pub(crate) fn unavailable(reason: impl std::fmt::Display) -> Self {
        Self::Unavailable { reason: reason.to_string() }
    }
}

/// The outcome of a command that did not produce events.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command (a domain rule).
    #[error(transparent)]
    Rejected(E),
    /// Concurrent writers kept winning, even after the bounded retries.
    #[error("the aggregate kept changing concurrently; gave up after {attempts} attempts")]
    Conflict { attempts: u32 },
    #[error(transparent)]
    Store(StoreError),
}

impl<E: std::error::Error> CommandError<E> {
    /// True when the caller should answer "service unavailable" (503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Store(StoreError::Unavailable { .. }))
    }

    /// True when the events may or may not have been stored.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Self::Store(StoreError::OutcomeUnknown { .. }))
    }
}

impl<E: std::error::Error> From<StoreError> for CommandError<E> {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => Self::Conflict { attempts: 1 },
            other => Self::Store(other),
        }
    }
}
