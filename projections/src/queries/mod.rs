//! The reads the REST API runs on the read models. Each returns rows of its own
//! types, so the API never depends on table layout.

pub mod analytics;
pub mod audit;
pub mod checkpoints;
pub mod contacts;
pub mod email_claims;
pub mod invitations;
pub mod notifications;
pub mod parked;
pub mod push;
pub mod recordings;
pub mod reminders;
pub mod rooms;
pub mod sessions;
pub mod settings;
pub mod users;
pub mod webhooks;

pub use audit::AuditRow;
pub use rooms::{ParticipantRow, RoomRow, RoomStatus};
pub use sessions::SessionRow;
pub use users::UserRow;

use crate::sql::is_transient;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The read database cannot be reached (REST answers 503).
    #[error("the read database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The query failed for another reason (a bug, or a row the code cannot read).
    #[error("read model query failed: {0}")]
    Failed(#[source] sqlx::Error),
}

impl QueryError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        if is_transient(&error) { Self::Unavailable(error) } else { Self::Failed(error) }
    }
}

/// `LIMIT`/`OFFSET` of a 1-based page; page 0 is read as page 1 and a limit of 0 as 1.
pub(crate) fn page_bounds(page: u32, limit: u32) -> (i64, i64) {
    let limit = i64::from(limit.max(1));
    let offset = i64::from(page.max(1) - 1) * limit;
    (limit, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_one_based() {
        assert_eq!(page_bounds(1, 20), (20, 0));
        assert_eq!(page_bounds(3, 20), (20, 40));
        assert_eq!(page_bounds(0, 0), (1, 0));
    }
}
