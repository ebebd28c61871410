//! Why a room refused a command, and why a value is not a valid part of a room.

use crate::services::HashingError;

/// A command the room refuses. Each variant is a decision of the aggregate, except
/// [`RoomError::Hashing`], which is the password service failing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("the room already exists")]
    AlreadyExists,
    #[error("the room does not exist")]
    NotFound,
    #[error("the room has ended")]
    Ended,
    #[error("only the host of the room can do that")]
    NotHost,
    #[error("the room password is missing or wrong")]
    WrongPassword,
    #[error("the room is full")]
    Full,
    #[error("that user is not a participant in the room")]
    NotAParticipant,
    #[error("the host cannot be removed from their own room")]
    CannotRemoveHost,
    #[error("the room has more participants than the new maximum")]
    MaxUsersBelowParticipants,
    #[error("the host muted you; ask the host to allow you to unmute")]
    MutedByHost,
    #[error("the meeting has already started; its schedule can no longer change")]
    AlreadyStarted,
    #[error("the room has no scheduled time; set scheduledAt as well")]
    NotScheduled,
    #[error("the reminder is for a schedule the room no longer has")]
    StaleSchedule,
    #[error("the room is already being recorded")]
    AlreadyRecording,
    #[error("the room is not being recorded")]
    NotRecording,
    #[error(transparent)]
    Hashing(#[from] HashingError),
}

/// A value that cannot be part of a room (a 400 at the API, never an aggregate
/// decision).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoomInputError {
    #[error("the room name must not be empty")]
    NameEmpty,
    #[error("the room name must be at most {max} characters long")]
    NameTooLong { max: usize },
    #[error("the room name must not contain control characters")]
    NameHasControlCharacters,
    #[error("the room description must be at most {max} characters long")]
    DescriptionTooLong { max: usize },
    #[error("the room description must not contain control characters other than tabs and line breaks")]
    DescriptionHasControlCharacters,
    #[error("scheduledAt must lie between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z")]
    ScheduledAtOutOfRange,
    #[error("the maximum number of users must be between 1 and {max}")]
    MaxUsersOutOfRange { max: u32 },
    #[error("durationMinutes must be between 1 and {max}")]
    DurationOutOfRange { max: u16 },
    #[error("scheduledAt must not lie in the past")]
    ScheduledInThePast,
    #[error("scheduledAt must lie at most {days} days ahead")]
    ScheduledTooFarAhead { days: i64 },
}
