//! Live delivery of notifications: after a batch of the notifications projection
//! commits, each in-app notification it added is published on core NATS
//! (`Namespace::user_notifications_subject`), where the gateways holding a socket
//! of the recipient forward it. Best effort by design: the row is committed, so a
//! push lost to a crash or a NATS outage costs only liveness (a client reads the
//! list and the unread count when it reconnects).

use rapat_wire::Namespace;
use sqlx::PgPool;

use crate::queries::notifications::added_between;

/// Publishes the notifications caused by events after stream sequence `after` up
/// to `up_to`. Never fails: a problem is logged.
pub(super) async fn publish_added(
    pool: &PgPool,
    client: async_nats::Client,
    namespace: &Namespace,
    after: u64,
    up_to: u64,
) {
    let rows = match added_between(pool, after, up_to).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, after, up_to, "cannot read the new notifications to push them");
            return;
        }
    };
    for row in rows {
        let subject = namespace.user_notifications_subject(row.recipient_id);
        let body = match serde_json::to_vec(&row) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, id = %row.id, "cannot encode a notification");
                continue;
            }
        };
        if let Err(error) = client.publish(subject, body.into()).await {
            tracing::warn!(%error, id = %row.id, "cannot push a notification");
        }
    }
}
