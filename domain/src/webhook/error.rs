//! Why a webhook endpoint refused a command, or its input did not parse.

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the URL {0}")]
    BadUrl(String),
    #[error(
        "{0:?} is not an event type pattern: use an event type (RoomCreated), an aggregate type and .* (room.*), or *"
    )]
    BadEventType(String),
    #[error("eventTypes must name at least one pattern")]
    NoEventTypes,
    #[error("eventTypes may hold at most 100 patterns")]
    TooManyEventTypes,
    #[error("the description {0}")]
    BadDescription(String),
    #[error("a secret is whsec_ and the base64 of 24 to 32 bytes")]
    BadSecret,
    #[error("no such webhook")]
    NotFound,
    /// The id is taken by an endpoint registered differently: the caller reused an id.
    #[error("a different webhook was already registered with this id")]
    AlreadyRegistered,
}
