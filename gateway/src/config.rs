//! The gateway's settings. The binary fills them from flags and the environment;
//! tests build them directly.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Clone)]
pub struct GatewayConfig {
    pub bind: SocketAddr,
    /// HS256 key for access tokens; at least 32 bytes. Every gateway of one
    /// deployment needs the same key.
    pub jwt_secret: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Origins allowed by CORS; empty means same-origin only.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted (an avatar data URL must fit).
    pub body_limit_bytes: usize,
    pub auth_rate_limit: RateLimit,
    /// How long a write waits for its read models before answering 503.
    pub read_your_writes_timeout: Duration,
    /// A user seen (any authenticated request) within this window is online.
    pub presence_window: Duration,
    /// How long a session seen active is trusted without asking the read model
    /// again; revocations evict it sooner (see `session_cache.rs`). Zero turns
    /// the cache off.
    pub session_cache_ttl: Duration,
    /// How often a WebSocket is pinged.
    pub ws_ping_interval: Duration,
    /// A WebSocket silent (no pong, no message) this long is dropped.
    pub ws_pong_timeout: Duration,
}

/// A token bucket per client IP: `burst` requests at once, then one more every
/// `replenish_every`.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub burst: u32,
    pub replenish_every: Duration,
}

impl GatewayConfig {
    pub fn new(bind: SocketAddr, jwt_secret: Vec<u8>) -> Self {
        Self {
            bind,
            jwt_secret,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            cors_origins: Vec::new(),
            body_limit_bytes: 1024 * 1024,
            auth_rate_limit: RateLimit { burst: 20, replenish_every: Duration::from_secs(3) },
            read_your_writes_timeout: Duration::from_secs(3),
            presence_window: Duration::from_secs(120),
            session_cache_ttl: Duration::from_secs(10),
            ws_ping_interval: Duration::from_secs(20),
            ws_pong_timeout: Duration::from_secs(60),
        }
    }
}
