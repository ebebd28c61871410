//! One active instance per projection (or other singleton task) across processes.
//!
//! The active instance holds a session-level Postgres advisory lock keyed by a
//! name, on a connection of its own kept for the whole run. When that process dies
//! its connection closes, Postgres drops the lock, and a standby's next try
//! succeeds. The lock is what makes one instance do the work; what makes a
//! projection's work exactly-once even if two overlap for a moment is the
//! checkpoint row, locked and compared in every batch transaction (see `runner.rs`).

use sqlx::{Connection, PgConnection, PgPool};

use super::Projection;

/// First half of the advisory lock key ("rapa"), so rapat's locks do not collide
/// with another application's on the same database.
const LOCK_CLASS: i32 = 0x7261_7061;

/// A named session-level advisory lock on a connection of its own. Also used by
/// tasks outside this crate that must run once per database (the registration
/// manager).
pub struct AdvisoryLock {
    connection: PgConnection,
    name: String,
}

impl AdvisoryLock {
    /// Takes the lock `name` if nobody holds it; `None` if somebody does.
    pub async fn try_acquire(pool: &PgPool, name: &str) -> Result<Option<Self>, sqlx::Error> {
        let options = pool.connect_options();
        let mut connection = PgConnection::connect_with(&options).await?;
        let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(name)
            .fetch_one(&mut connection)
            .await?;
        if acquired {
            Ok(Some(Self { connection, name: name.to_owned() }))
        } else {
            let _ = connection.close().await;
            Ok(None)
        }
    }

    /// False once the lock's connection is gone, and with it the lock: another
    /// instance may be active now.
    pub async fn still_held(&mut self) -> bool {
        self.connection.ping().await.is_ok()
    }

    pub async fn release(mut self) {
        let released = sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2))")
            .bind(LOCK_CLASS)
            .bind(&self.name)
            .execute(&mut self.connection)
            .await;
        if let Err(error) = released {
            // Closing the connection releases it anyway.
            tracing::debug!(lock = %self.name, %error, "unlock failed");
        }
        let _ = self.connection.close().await;
    }
}

/// The lock of one projection.
pub(crate) struct ProjectionLock(AdvisoryLock);

impl ProjectionLock {
    /// Takes the projection's lock if nobody holds it; `None` if somebody does.
    pub(crate) async fn try_acquire(pool: &PgPool, projection: Projection) -> Result<Option<Self>, sqlx::Error> {
        Ok(AdvisoryLock::try_acquire(pool, &lock_name(projection)).await?.map(Self))
    }

    pub(crate) async fn still_held(&mut self) -> bool {
        self.0.still_held().await
    }

    pub(crate) async fn release(self) {
        self.0.release().await;
    }

    /// The connection holding the lock, on which the projection's batches run.
    pub(crate) fn connection(&mut self) -> &mut PgConnection {
        &mut self.0.connection
    }
}

fn lock_name(projection: Projection) -> String {
    format!("rapat.projection.{}", projection.name())
}
