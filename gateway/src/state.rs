//! What every handler can reach: the command buses (write side), the read models
//! (read side), tokens and presence.

use std::sync::Arc;

use rapat_commands::CommandBus;
use rapat_domain::account::{Account, EmailClaim};
use rapat_domain::contacts::ContactList;
use rapat_domain::inbox::Inbox;
use rapat_domain::invitation::Invitation;
use rapat_domain::push::PushDevices;
use rapat_domain::room::Room;
use rapat_domain::session::Session;
use rapat_domain::settings::UserSettings;
use rapat_domain::webhook::Webhook;
use rapat_projections::ProjectionPositions;
use sqlx::PgPool;

use crate::config::GatewayConfig;
use crate::presence::Presence;
use crate::session_cache::SessionCache;
use crate::tokens::TokenKeys;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub accounts: CommandBus<Account>,
    pub emails: CommandBus<EmailClaim>,
    pub rooms: CommandBus<Room>,
    pub contacts: CommandBus<ContactList>,
    pub sessions: CommandBus<Session>,
    pub invitations: CommandBus<Invitation>,
    pub settings: CommandBus<UserSettings>,
    /// What each user has read of their notifications.
    pub inboxes: CommandBus<Inbox>,
    /// Webhook endpoints (SPEC §7).
    pub webhooks: CommandBus<Webhook>,
    /// Each user's web push subscriptions.
    pub push_devices: CommandBus<PushDevices>,
    /// The deployment's VAPID key, read (or made and kept) on first use.
    pub vapid: tokio::sync::OnceCell<rapat_delivery::push::VapidKey>,
    pub db: PgPool,
    pub positions: ProjectionPositions,
    pub tokens: TokenKeys,
    pub presence: Presence,
    pub session_cache: Arc<SessionCache>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub nats: async_nats::Client,
    /// This gateway's WebSocket sockets and their NATS room fan-out.
    pub signaling: Arc<crate::ws::Hub>,
    pub config: GatewayConfig,

    /// The one argon2id hasher (bounded workers) of this gateway: logins verify
    /// with it and the aggregates' `DomainServices` hold it.
    pub passwords: std::sync::Arc<dyn rapat_domain::services::PasswordHasher>,
    /// Per-process throttles of failed room joins and room creation (`limits.rs`).
    pub limits: crate::limits::Limits,
    /// The one way to tell a request's client address (trusted proxies
    /// considered), which every per-address limit keys on.
    pub client_addr: crate::client_addr::ClientAddr,
    /// Draining and stopping (`shutdown.rs`): read by `/readyz`, the middleware
    /// that refuses new requests, and every WebSocket session.
    pub shutdown: crate::shutdown::Shutdown,
    /// Where recorded files are kept (SPEC §10); downloads are served from it.
    pub recordings: Arc<dyn rapat_recording::RecordingStore>,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
