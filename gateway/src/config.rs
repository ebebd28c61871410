//! The gateway's settings. The binary fills them from flags and the environment;
//! tests build them directly.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use rapat_commands::HashingLimits;
use serde::{Deserialize, Deserializer, Serialize};

use crate::turn::TurnConfig;

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
    /// How long a write waits for its read models before answering 202
    /// `stored_not_visible` (cut to what is left of `request_deadline`).
    pub read_your_writes_timeout: Duration,
    /// Everything a REST request does (load, publish, settle, wait for read
    /// models, queries) fits in this; then it is answered (503 or 202).
    pub request_deadline: Duration,
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
    /// How long an open WebSocket counts for presence after its gateway last
    /// refreshed it. A gateway refreshes its sockets about three times per this
    /// period, so only a gateway that died leaves a socket to expire.
    pub presence_socket_ttl: Duration,
    /// STUN/TURN servers handed to each socket in its first (`config`) message.
    pub ice_servers: Vec<IceServer>,
    /// TURN servers whose time-limited credentials (`turn.rs`) are added to
    /// `ice_servers` for each socket.
    pub turn: Option<TurnConfig>,
    /// Chat history: the oldest message kept (on the chat stream, made with these
    /// limits when missing; an existing stream keeps its own).
    pub chat_max_age: Duration,
    /// Chat history: the most messages kept per room.
    pub chat_max_per_room: i64,
    /// Replicas of the chat stream (a clustered NATS wants 3).
    pub chat_replicas: usize,

    // Limits against abuse, each a setting of the binary (`src/settings.rs`).
    /// Argon2id: hashes computed at once and how long a request waits for a turn
    /// before it is answered 503 `busy`.
    pub hashing: HashingLimits,
    /// Wrong room passwords tolerated before joins answer 429.
    pub room_join_failures: JoinFailureLimits,
    /// Rooms one user may create within any hour (counted in the rooms read
    /// model, so every gateway agrees); 0 means no cap.
    pub rooms_per_user_per_hour: u32,
    /// Timeouts for slow or idle HTTP clients, and the connection cap.
    pub http: HttpLimits,
    /// Reverse proxies (CIDR blocks) whose `X-Forwarded-For` names the client
    /// that rate limits are keyed on. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<IpNet>,

    // WebSocket abuse limits (`ws/limits.rs`).
    /// Open sockets one user may hold across every gateway; one more is refused
    /// with close 4429. Zero: no cap.
    pub ws_max_sockets_per_user: usize,
    /// Open sockets one user may hold in one room; one more replaces their oldest
    /// socket there, which closes with 4420 (so a reconnect never trips it). Zero:
    /// no cap.
    pub ws_max_sockets_per_room: usize,
    /// Largest WebSocket frame or message read; a bigger one closes the socket
    /// with 1009. (Messages over 64 KiB get an `error` and are not handled.)
    pub ws_max_message_bytes: usize,
    /// How much one socket reads from the network at a time, and the read buffer
    /// it keeps for its whole life. A bigger message is still read whole (its
    /// buffer grows to it for that message), in reads of this size.
    pub ws_read_buffer_bytes: usize,
    /// Per-socket message rates by kind; a socket over one is closed with 1008.
    pub ws_rate_limits: WsRateLimits,

    /// Webhook URLs may name loopback, private and link-local hosts
    /// (`RAPAT_WEBHOOK_ALLOW_PRIVATE`; the delivery worker has the same switch).
    pub webhook_allow_private: bool,
    /// Web push: the VAPID key setting and which endpoints are accepted.
    pub push: rapat_delivery::push::PushConfig,
    // Account recovery and verification (SPEC §7).
    /// `RAPAT_PUBLIC_URL`: where users reach rapat (links in emails and calendar
    /// files). `None`: calendar files use the origin a request came to.
    pub public_url: Option<String>,
    /// How long a password reset token is valid.
    pub password_reset_ttl: Duration,
    /// Reset requests accepted per email address within `window` (more answer 429).
    pub password_reset_per_address: u32,
    pub password_reset_window: Duration,
    /// `RAPAT_RECORDINGS_DIR`: the recording store's directory, which the SFU
    /// writes and downloads are served from (SPEC §10).
    pub recordings_dir: std::path::PathBuf,
}

/// Room password guessing: failed joins (a password was offered and was wrong)
/// allowed within `window`, per user and room, and per room from all users.
#[derive(Clone, Copy, Debug)]
pub struct JoinFailureLimits {
    pub per_user_and_room: u32,
    pub per_room: u32,
    pub window: Duration,
}

/// What a client may take of the HTTP server.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Time to send a request's head (request line and headers), counted from
    /// when the server starts waiting for it: after accepting the connection, or
    /// after answering the previous request on a kept-alive one.
    pub header_timeout: Duration,
    /// Time to send a whole request body, from the end of its head; then 408.
    pub body_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed
    /// (an idle keep-alive connection, or a client that stopped reading its
    /// answer). Upgraded WebSockets are exempt: they have their own ping/pong.
    pub idle_timeout: Duration,
    /// Open connections (WebSockets included); more are answered 503 and closed.
    pub max_connections: usize,
}

/// Token buckets per socket, by kind of client message (see `ws/limits.rs`).
#[derive(Clone, Copy, Debug)]
pub struct WsRateLimits {
    /// `join_room`: it broadcasts to the whole room.
    pub join_room: RateLimit,
    /// `chat`: stored and broadcast.
    pub chat: RateLimit,
    /// `mute`, `video`, `screen_share`, `request_unmute`, `allow_unmute`: each
    /// may append a room event.
    pub media: RateLimit,
    /// `offer` and `answer`.
    pub sdp: RateLimit,
    /// `ice-candidate`: a browser sends a few dozen at once.
    pub ice: RateLimit,
    /// Anything else: `auth`, unknown types, malformed or binary frames.
    pub other: RateLimit,
}

impl Default for WsRateLimits {
    fn default() -> Self {
        let limit = |burst, millis| RateLimit { burst, replenish_every: Duration::from_millis(millis) };
        Self {
            join_room: limit(5, 10_000),
            chat: limit(10, 1_000),
            media: limit(10, 1_000),
            sdp: limit(30, 500),
            ice: limit(300, 10),
            other: limit(20, 1_000),
        }
    }
}

/// One entry of a WebRTC `RTCConfiguration.iceServers`, as the browser takes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs. A single string is read as one URL.
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `"stun:a"` or `["stun:a", "stun:b"]`, as `RTCIceServer.urls` allows both.
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Urls::deserialize(deserializer)? {
        Urls::One(url) => vec![url],
        Urls::Many(urls) => urls,
    })
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
            request_deadline: Duration::from_millis(3000),
            presence_window: Duration::from_secs(120),
            session_cache_ttl: Duration::from_secs(10),
            ws_ping_interval: Duration::from_secs(20),
            ws_pong_timeout: Duration::from_secs(60),
            presence_socket_ttl: Duration::from_secs(90),
            ice_servers: Vec::new(),
            turn: None,
            chat_max_age: Duration::from_secs(30 * 24 * 3600),
            chat_max_per_room: 1000,
            chat_replicas: 1,
            hashing: HashingLimits::default(),
            public_url: None,
            password_reset_ttl: Duration::from_secs(30 * 60),
            password_reset_per_address: 3,
            password_reset_window: Duration::from_secs(15 * 60),
            recordings_dir: std::path::PathBuf::from("recordings"),
            room_join_failures: JoinFailureLimits {
                per_user_and_room: 5,
                per_room: 30,
                window: Duration::from_secs(60),
            },
            rooms_per_user_per_hour: 50,
            http: HttpLimits {
                header_timeout: Duration::from_secs(10),
                body_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
                max_connections: 10_000,
            },
            trusted_proxies: Vec::new(),
            ws_max_sockets_per_user: 20,
            ws_max_sockets_per_room: 3,
            ws_max_message_bytes: 1024 * 1024,
            ws_read_buffer_bytes: 4 * 1024,
            ws_rate_limits: WsRateLimits::default(),
            webhook_allow_private: false,
            push: rapat_delivery::push::PushConfig::default(),
        }
    }
}
