//! Live notifications: each user's `<namespace>.users.<userId>.notifications`
//! (core NATS, published by the notifications projection after its batch commits),
//! subscribed while this gateway holds at least one socket of the user (room or
//! lobby), and handed to every one of them as a `notification` message.
//!
//! Best effort, like the push it relays: a socket that missed one (it opened just
//! after, NATS was down) reads `GET /notifications` instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::StreamExt;
use rapat_projections::queries::notifications::NotificationRow;
use rapat_wire::Namespace;
use tokio::sync::OnceCell;
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::fanout::{Connection, Outgoing};
use super::message::{ServerMessage, user_message};
use crate::routes::notifications::NotificationView;

/// This gateway's sockets by user, and the subscriptions that feed them.
pub struct UserFeeds {
    nats: async_nats::Client,
    namespace: Namespace,
    users: Mutex<HashMap<Uuid, Arc<UserFeed>>>,
}

struct UserFeed {
    user: Uuid,
    connections: Mutex<HashMap<Uuid, Arc<Connection>>>,
    subscribed: OnceCell<()>,
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for UserFeed {
    fn drop(&mut self) {
        // Ending the task drops its subscription, which unsubscribes.
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

impl UserFeed {
    fn deliver(&self, body: &[u8]) {
        let row: NotificationRow = match serde_json::from_slice(body) {
            Ok(row) => row,
            Err(error) => {
                tracing::warn!(%error, user = %self.user, "a live notification that does not decode; dropped");
                return;
            }
        };
        if row.recipient_id != self.user {
            return;
        }
        let text = user_message(self.user, &ServerMessage::Notification(NotificationView::from(row)));
        for connection in lock(&self.connections).values() {
            connection.deliver(Outgoing::Text(text.clone()));
        }
    }
}

/// A socket's place in its user's feed; leaving it (drop) unsubscribes once the
/// user has no socket left on this gateway.
pub struct FeedMembership {
    feeds: Arc<UserFeeds>,
    user: Uuid,
    connection: Uuid,
}

impl Drop for FeedMembership {
    fn drop(&mut self) {
        let mut users = lock(&self.feeds.users);
        let Some(feed) = users.get(&self.user) else { return };
        let empty = {
            let mut connections = lock(&feed.connections);
            connections.remove(&self.connection);
            connections.is_empty()
        };
        if empty {
            users.remove(&self.user);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot subscribe to the user's notifications: {0}")]
pub struct FeedUnavailable(String);

impl UserFeeds {
    pub fn new(nats: async_nats::Client, namespace: Namespace) -> Self {
        Self { nats, namespace, users: Mutex::new(HashMap::new()) }
    }

    /// Adds `connection` to its user's feed, subscribing first if it is the user's
    /// first socket here. Returns once the subscription is live on the server, so a
    /// notification committed after this returns reaches the socket.
    pub async fn join(self: &Arc<Self>, connection: Arc<Connection>) -> Result<FeedMembership, FeedUnavailable> {
        let user = connection.identity.user;
        let membership = FeedMembership { feeds: Arc::clone(self), user, connection: connection.id };
        let feed = {
            let mut users = lock(&self.users);
            let feed = users.entry(user).or_insert_with(|| {
                Arc::new(UserFeed {
                    user,
                    connections: Mutex::new(HashMap::new()),
                    subscribed: OnceCell::new(),
                    task: Mutex::new(None),
                })
            });
            lock(&feed.connections).insert(connection.id, connection);
            Arc::clone(feed)
        };
        feed.subscribed
            .get_or_try_init(|| async {
                let subject = self.namespace.user_notifications_subject(user);
                let mut subscriber =
                    self.nats.subscribe(subject).await.map_err(|error| FeedUnavailable(error.to_string()))?;
                self.nats.flush().await.map_err(|error| FeedUnavailable(error.to_string()))?;
                let weak: Weak<UserFeed> = Arc::downgrade(&feed);
                let task = tokio::spawn(async move {
                    while let Some(message) = subscriber.next().await {
                        let Some(feed) = weak.upgrade() else { break };
                        feed.deliver(&message.payload);
                    }
                });
                *lock(&feed.task) = Some(task.abort_handle());
                Ok::<(), FeedUnavailable>(())
            })
            .await?;
        Ok(membership)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
