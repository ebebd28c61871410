//! Which database errors are worth retrying.

/// True when `error` says the database (or the way to it) is unavailable for now,
/// rather than that the statement or its data is wrong. A retry later may succeed;
/// the same statement on the same data never will for the other kind.
pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => {
                let code = code.as_ref();
                // 08: connection exception; 53: insufficient resources; 57P: server
                // shutting down; 40001/40P01: serialization failure and deadlock;
                // 57014: statement cancelled (timeout).
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || matches!(code, "40001" | "40P01" | "57014" | "55P03")
            }
            None => false,
        },
        // The statement ran and its data did not fit: retrying will not help.
        sqlx::Error::RowNotFound
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => false,
        // I/O, TLS, protocol, pool timeouts, a closed pool, a crashed worker, and
        // anything newer: treat as an outage. A stuck projection is visible in the
        // logs; an event wrongly parked is silently missing from a read model.
        _ => true,
    }
}

/// Postgres has no unsigned integers; stream sequences and versions fit in i64 for
/// any stream that will ever exist.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
