//! Waking a background loop when a projection changed a table it watches
//! (`pg_notify` at commit), with a poll as the fallback: a loop that re-reads its
//! table after every wake-up misses nothing even when a notification is lost to a
//! broken connection.

use sqlx::PgPool;
use sqlx::postgres::PgListener;

pub struct ChangeListener {
    db: PgPool,
    channel: &'static str,
    listener: Option<PgListener>,
}

impl ChangeListener {
    /// Listens on `channel`; if that cannot be done now, the loop polls until a
    /// later wake-up connects again.
    pub async fn connect(db: &PgPool, channel: &'static str) -> Self {
        let mut this = Self { db: db.clone(), channel, listener: None };
        this.listener = this.listen().await;
        this
    }

    /// Returns at the next notification, or at once when the connection broke (it
    /// is made again, and the caller re-reads its table meanwhile). Never returns
    /// while there is no connection: then only the caller's poll timer wakes it.
    pub async fn changed(&mut self) {
        let Some(listener) = &mut self.listener else { return std::future::pending().await };
        if listener.recv().await.is_err() {
            self.listener = self.listen().await;
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let channel = self.channel;
        let mut listener = match PgListener::connect_with(&self.db).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, channel, "cannot listen for changes; polling");
                return None;
            }
        };
        match listener.listen(channel).await {
            Ok(()) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, channel, "cannot listen for changes; polling");
                None
            }
        }
    }
}
