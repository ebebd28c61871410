//! Settings shared by every subcommand: flags, each also read from the
//! environment. Secrets come from the environment only.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use rapat_commands::EventStoreConfig;
use rapat_gateway::{GatewayConfig, HttpLimits, JoinFailureLimits, RateLimit, WsRateLimits};
use rapat_projections::ProjectorConfig;
use rapat_wire::Namespace;

mod values;

use values::{IceServers, parse_cidr, parse_ice_servers, parse_port_range, parse_rate, parse_replicas};

#[derive(clap::Args)]
pub struct Settings {
    /// A file of NAME=value lines (the environment variable names below) used as
    /// defaults; the environment and flags still win.
    #[arg(long, env = "RAPAT_CONFIG", global = true)]
    pub config: Option<std::path::PathBuf>,
    /// NATS server with JetStream: the event store.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", global = true)]
    pub nats_url: String,
    /// Postgres database for the read models; created when missing.
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/rapat", global = true)]
    pub database_url: String,
    /// Prefix of the stream, subjects, buckets and consumers, so several
    /// deployments can share one NATS cluster: 1 to 64 ASCII letters, digits, `_`
    /// or `-`.
    #[arg(long, env = "RAPAT_NAMESPACE", default_value = "rapat", value_parser = Namespace::parse, global = true)]
    pub namespace: Namespace,
    /// Replicas of every stream and key-value bucket rapat creates (events,
    /// snapshots, chat, presence, SFU placement): 1 for a single NATS server, 3
    /// for a 3-node cluster. Existing streams keep theirs.
    #[arg(long, env = "RAPAT_STREAM_REPLICAS", default_value_t = 1, value_parser = parse_replicas, global = true)]
    pub stream_replicas: usize,
    /// Address the REST gateway listens on.
    #[arg(long, env = "RAPAT_HTTP_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub http_addr: SocketAddr,
    /// Origins allowed to call the API from a browser (comma-separated).
    #[arg(long, env = "RAPAT_CORS_ORIGINS", value_delimiter = ',', global = true)]
    pub cors_origins: Vec<String>,
    /// Access token lifetime, in seconds.
    #[arg(long, env = "RAPAT_ACCESS_TTL_SECONDS", default_value_t = 900, global = true)]
    pub access_ttl_seconds: u64,
    /// The SFU's one UDP socket for every peer's media (ICE-lite, demultiplexed by
    /// ICE username). Open this port to browsers.
    #[arg(long, env = "RAPAT_SFU_UDP_ADDR", default_value = "0.0.0.0:7882", global = true)]
    pub sfu_udp_addr: SocketAddr,
    /// Instead of the one port: a range such as `50000-50099`, bound on
    /// RAPAT_SFU_UDP_ADDR's address, with peers spread over its ports.
    #[arg(long, env = "RAPAT_SFU_PORT_RANGE", value_parser = parse_port_range, global = true)]
    pub sfu_port_range: Option<(u16, u16)>,
    /// The IP address the SFU announces in its ICE candidate: the host's public
    /// address when it is behind NAT. By default the bound address, or the
    /// primary interface's when bound to 0.0.0.0.
    #[arg(long, env = "RAPAT_SFU_PUBLIC_IP", global = true)]
    pub sfu_public_ip: Option<IpAddr>,
    /// A TCP port for ICE-TCP (a passive candidate beside the UDP one) for
    /// networks that block UDP, e.g. `0.0.0.0:7882`. Off by default.
    #[arg(long, env = "RAPAT_SFU_TCP_ADDR", global = true)]
    pub sfu_tcp_addr: Option<SocketAddr>,
    /// Open ICE-TCP connections over all peers; more are refused until some close.
    #[arg(long, env = "RAPAT_SFU_TCP_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub sfu_tcp_max_connections: u32,
    /// Seconds an ICE-TCP connection has to send a binding request that verifies
    /// with a peer's ICE password; then it is closed.
    #[arg(long, env = "RAPAT_SFU_TCP_VERIFY_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub sfu_tcp_verify_seconds: u64,
    /// Packets queued for one ICE-TCP connection's writer; more are dropped (a
    /// client whose TCP path stalls loses media, not the server's memory).
    #[arg(long, env = "RAPAT_SFU_TCP_WRITE_QUEUE", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub sfu_tcp_write_queue: u32,
    /// Media worker threads of the SFU; 0 means one per core.
    #[arg(long, env = "RAPAT_SFU_WORKERS", default_value_t = 0, global = true)]
    pub sfu_workers: usize,
    /// Live SFU peer connections one user may hold in one room; a newer one
    /// replaces their oldest (the client reconnects on a new socket after a drop).
    /// A room takes peers from at most its maxUsers distinct users.
    #[arg(long, env = "RAPAT_SFU_MAX_PEERS_PER_USER", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..), global = true)]
    pub sfu_max_peers_per_user: u16,
    /// Remote addresses one SFU peer may route from: the first of its client's
    /// candidates to pass a STUN check verified with the peer's ICE password (a
    /// client that moves more often reconnects). Nothing is kept for unverified senders.
    #[arg(long, env = "RAPAT_SFU_MAX_ADDRESSES_PER_PEER", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..), global = true)]
    pub sfu_max_addresses_per_peer: u16,
    /// STUN/TURN servers handed to browsers in each socket's `config` message, as
    /// the JSON of `RTCConfiguration.iceServers`, e.g.
    /// `[{"urls":"turn:turn.example.org:3478","username":"u","credential":"p"}]`.
    /// None by default: the SFU's candidate is directly reachable.
    #[arg(long, env = "RAPAT_ICE_SERVERS", value_parser = parse_ice_servers, global = true)]
    pub ice_servers: Option<IceServers>,
    /// TURN URLs (comma separated, e.g. `turn:turn.example.org:3478`) handed to
    /// every socket with a credential of its own, signed with RAPAT_TURN_SECRET
    /// (coturn's `use-auth-secret`; the secret is read from the environment only).
    #[arg(long, env = "RAPAT_TURN_URLS", value_delimiter = ',', global = true)]
    pub turn_urls: Vec<String>,
    /// How long a TURN credential works after the socket got it, in seconds.
    #[arg(long, env = "RAPAT_TURN_TTL_SECONDS", default_value_t = 86400, global = true)]
    pub turn_ttl_seconds: u64,
    // WebSocket abuse limits.
    /// Open WebSockets one user may hold across every gateway; one more is
    /// refused (close 4429). 0: no cap.
    #[arg(long, env = "RAPAT_WS_MAX_SOCKETS_PER_USER", default_value_t = 20, global = true)]
    pub ws_max_sockets_per_user: usize,
    /// Open WebSockets one user may hold in one room; one more replaces their
    /// oldest there (close 4420), so a reconnect is never refused. 0: no cap.
    #[arg(long, env = "RAPAT_WS_MAX_SOCKETS_PER_ROOM", default_value_t = 3, global = true)]
    pub ws_max_sockets_per_room: usize,
    /// Largest WebSocket message or frame, in bytes; a bigger one closes the
    /// socket with 1009.
    #[arg(long, env = "RAPAT_WS_MAX_MESSAGE_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub ws_max_message_bytes: usize,
    /// Read buffer of each WebSocket, in bytes (at least 512): what one read
    /// takes from the network, held by every open socket (a bigger message is
    /// still read whole).
    #[arg(long, env = "RAPAT_WS_READ_BUFFER_BYTES", default_value_t = 4 * 1024, value_parser = clap::value_parser!(u32).range(512..), global = true)]
    pub ws_read_buffer_bytes: u32,
    /// Per-socket rate of `join_room` messages, as BURST/PERIOD: BURST at once,
    /// then one more each PERIOD (`ms` or `s`). Over it, the socket closes (1008).
    #[arg(long, env = "RAPAT_WS_RATE_JOIN_ROOM", default_value = "5/10s", value_parser = parse_rate, global = true)]
    pub ws_rate_join_room: RateLimit,
    /// Per-socket rate of `chat` messages (BURST/PERIOD).
    #[arg(long, env = "RAPAT_WS_RATE_CHAT", default_value = "10/1s", value_parser = parse_rate, global = true)]
    pub ws_rate_chat: RateLimit,
    /// Per-socket rate of `mute`, `video`, `screen_share`, `request_unmute` and
    /// `allow_unmute` messages together (BURST/PERIOD).
    #[arg(long, env = "RAPAT_WS_RATE_MEDIA", default_value = "10/1s", value_parser = parse_rate, global = true)]
    pub ws_rate_media: RateLimit,
    /// Per-socket rate of `offer` and `answer` messages (BURST/PERIOD).
    #[arg(long, env = "RAPAT_WS_RATE_SDP", default_value = "30/500ms", value_parser = parse_rate, global = true)]
    pub ws_rate_sdp: RateLimit,
    /// Per-socket rate of `ice-candidate` messages (BURST/PERIOD).
    #[arg(long, env = "RAPAT_WS_RATE_ICE", default_value = "300/10ms", value_parser = parse_rate, global = true)]
    pub ws_rate_ice: RateLimit,
    /// Per-socket rate of any other message (`auth`, unknown types, malformed or
    /// binary frames) (BURST/PERIOD).
    #[arg(long, env = "RAPAT_WS_RATE_OTHER", default_value = "20/1s", value_parser = parse_rate, global = true)]
    pub ws_rate_other: RateLimit,
    // Graceful shutdown on SIGTERM or Ctrl-C (SIGINT).
    /// Seconds between the start of a shutdown and the listener closing: `/readyz`
    /// answers 503 and new requests are refused meanwhile, so load balancers
    /// notice and stop sending before connections are refused.
    #[arg(long, env = "RAPAT_SHUTDOWN_DRAIN_SECONDS", default_value_t = 2, global = true)]
    pub shutdown_drain_seconds: u64,
    /// Seconds a shutdown may take in all (the drain above included): requests
    /// in flight finish, sockets close with 1012, the projector and SFU stop.
    /// Past it the process exits anyway, with status 1 and a log line saying so.
    #[arg(long, env = "RAPAT_SHUTDOWN_GRACE_SECONDS", default_value_t = 20, global = true)]
    pub shutdown_grace_seconds: u64,
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "RAPAT_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,

    // Limits against abuse. Per-address limits key on the client address (see
    // RAPAT_TRUSTED_PROXIES).
    /// Auth endpoints (register, login, refresh, logout): requests one client
    /// address may send at once before it is slowed down (429).
    #[arg(long, env = "RAPAT_AUTH_RATE_BURST", default_value_t = 20, global = true)]
    pub auth_rate_burst: u32,
    /// Auth endpoints: requests per minute one client address regains after its
    /// burst (one every 60/N seconds).
    #[arg(long, env = "RAPAT_AUTH_RATE_PER_MINUTE", default_value_t = 20, global = true)]
    pub auth_rate_per_minute: u32,
    /// Reverse proxies whose X-Forwarded-For names the client, as CIDR blocks
    /// (comma-separated, e.g. `10.0.0.0/8,192.168.1.10/32`). None by default: the
    /// TCP peer is the client.
    #[arg(long, env = "RAPAT_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_cidr, global = true)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Argon2id hashes computed at once (each holds 19 MiB while the process
    /// runs); 0 means one per core.
    #[arg(long, env = "RAPAT_HASH_WORKERS", default_value_t = 0, global = true)]
    pub hash_workers: usize,
    /// How long a login, registration or room join waits for a hashing worker
    /// before it is answered 503 `busy`, in milliseconds.
    #[arg(long, env = "RAPAT_HASH_QUEUE_TIMEOUT_MS", default_value_t = 5000, global = true)]
    pub hash_queue_timeout_ms: u64,
    /// Wrong room passwords one user may offer to one room per window before
    /// that user's joins of that room answer 429; 0 means no limit.
    #[arg(long, env = "RAPAT_ROOM_JOIN_FAILURES_PER_USER", default_value_t = 5, global = true)]
    pub room_join_failures_per_user: u32,
    /// Wrong passwords one room accepts from all users together per window before
    /// its password joins answer 429; 0 means no limit.
    #[arg(long, env = "RAPAT_ROOM_JOIN_FAILURES_PER_ROOM", default_value_t = 30, global = true)]
    pub room_join_failures_per_room: u32,
    /// The window of the two room join limits, in seconds.
    #[arg(long, env = "RAPAT_ROOM_JOIN_FAILURE_WINDOW_SECONDS", default_value_t = 60, global = true)]
    pub room_join_failure_window_seconds: u64,
    /// Rooms one user may create within any hour; 0 means no cap.
    #[arg(long, env = "RAPAT_ROOMS_PER_USER_PER_HOUR", default_value_t = 50, global = true)]
    pub rooms_per_user_per_hour: u32,
    /// Seconds a client has to send a request's head (also how long a kept-alive
    /// connection may wait for its next request).
    #[arg(long, env = "RAPAT_HTTP_HEADER_TIMEOUT_SECONDS", default_value_t = 10, global = true)]
    pub http_header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body; then 408.
    #[arg(long, env = "RAPAT_HTTP_BODY_TIMEOUT_SECONDS", default_value_t = 30, global = true)]
    pub http_body_timeout_seconds: u64,
    /// Seconds an HTTP connection may move no byte before it is closed
    /// (WebSockets excepted: they have their own ping/pong).
    #[arg(long, env = "RAPAT_HTTP_IDLE_TIMEOUT_SECONDS", default_value_t = 60, global = true)]
    pub http_idle_timeout_seconds: u64,
    /// Open HTTP connections, WebSockets included; more are answered 503 and
    /// closed.
    #[arg(long, env = "RAPAT_HTTP_MAX_CONNECTIONS", default_value_t = 10_000, global = true)]
    pub http_max_connections: usize,
    /// Largest request body accepted, in bytes; a larger one is answered 413. An
    /// avatar (a data URL) must fit.
    #[arg(long, env = "RAPAT_HTTP_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub http_max_body_bytes: usize,
    /// Milliseconds a REST request may take across all its steps (load, publish,
    /// settle, read models, queries); then it is answered 503 (or 202 when its
    /// write is stored but not yet visible).
    #[arg(long, env = "RAPAT_REQUEST_DEADLINE_MS", default_value_t = 3000, global = true)]
    pub request_deadline_ms: u64,
    /// Seconds a registration may stay unfinished (its email claimed, its
    /// account not yet registered) before the registration manager finishes it
    /// or undoes it, freeing the address; a registration still running then is
    /// answered 503.
    #[arg(long, env = "RAPAT_REGISTRATION_GRACE_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub registration_grace_seconds: u64,
    /// Seconds after its moment a meeting reminder counts as late (`late: true`):
    /// every rapat process was down when it came due.
    #[arg(long, env = "RAPAT_REMINDER_LATE_AFTER_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub reminder_late_after_seconds: u64,
    /// Web push: the VAPID `sub` claim, a `mailto:` or `https:` URL where push
    /// services can reach the operator. By default RAPAT_PUBLIC_URL when it is
    /// https, else `mailto:admin@localhost`. (The key itself,
    /// RAPAT_VAPID_PRIVATE_KEY, comes from the environment only.)
    #[arg(long, env = "RAPAT_VAPID_SUBJECT", global = true)]
    pub vapid_subject: Option<String>,
    /// Web push: accept `http` subscription endpoints on loopback hosts and
    /// endpoints resolving to private addresses. For tests and local push
    /// service stand-ins only.
    #[arg(long, env = "RAPAT_PUSH_ALLOW_INSECURE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub push_allow_insecure: bool,
    /// Milliseconds before the first retry of an email or push that could not be
    /// sent; each later retry waits up to twice as long (with jitter).
    #[arg(long, env = "RAPAT_DELIVERY_RETRY_BASE_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub delivery_retry_base_ms: u64,
    /// The longest wait between two retries of an email or push, in milliseconds.
    #[arg(long, env = "RAPAT_DELIVERY_RETRY_MAX_MS", default_value_t = 3_600_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub delivery_retry_max_ms: u64,
    /// Seconds an email or push is retried before it is marked `failed`.
    #[arg(long, env = "RAPAT_DELIVERY_GIVE_UP_AFTER_SECONDS", default_value_t = 90_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub delivery_give_up_after_seconds: u64,
    /// Webhooks may go to loopback, private, link-local and other non-public
    /// addresses (tests, private deployments); off, such URLs are refused at
    /// registration and at every delivery.
    #[arg(long, env = "RAPAT_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_private: bool,
    /// Milliseconds before a failed webhook is tried again the first time; each
    /// later wait doubles (with jitter), up to RAPAT_WEBHOOK_RETRY_MAX_MS.
    #[arg(long, env = "RAPAT_WEBHOOK_RETRY_BASE_MS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub webhook_retry_base_ms: u64,
    /// Longest wait between two attempts of a webhook, in milliseconds.
    #[arg(long, env = "RAPAT_WEBHOOK_RETRY_MAX_MS", default_value_t = 3_600_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub webhook_retry_max_ms: u64,
    /// Milliseconds a projection batch that no write waits for (audit,
    /// analytics, notifications and webhooks following room events) goes on
    /// gathering messages before it is applied: fewer, bigger transactions
    /// beside the ones writes wait for, at the cost of those read models being
    /// up to this much later. 0 applies every batch as soon as it arrives.
    #[arg(long, env = "RAPAT_PROJECTION_LINGER_MS", default_value_t = ProjectorConfig::DEFAULT_LINGER_MS, value_parser = clap::value_parser!(u64).range(0..=ProjectorConfig::MAX_LINGER_MS), global = true)]
    pub projection_linger_ms: u64,
    /// Seconds after its first attempt a webhook delivery is retried before it is
    /// `failed` (SPEC §7: at least a day; the default is 25 hours).
    #[arg(long, env = "RAPAT_WEBHOOK_GIVE_UP_AFTER_SECONDS", default_value_t = 90_000, global = true)]
    pub webhook_give_up_after_seconds: u64,
    /// Seconds an endpoint's lease lasts (renewed before each attempt; more than
    /// the 10 s a receiver has to answer): how long the deliveries of a rapat
    /// process that crashed mid-send wait before another one sends them.
    #[arg(long, env = "RAPAT_WEBHOOK_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(11..), global = true)]
    pub webhook_lease_seconds: u64,
    /// The mail server for the email channel: `smtp://host:port` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host` (TLS). Unset: the email channel is off.
    #[arg(long, env = "RAPAT_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,
    /// The sender of every email: `rapat <noreply@example.com>` or a bare address.
    #[arg(long, env = "RAPAT_MAIL_FROM", default_value = "rapat <noreply@localhost>", global = true)]
    pub mail_from: String,
    /// Where users reach rapat, such as `https://meet.example.com`: the base of
    /// the links in emails and calendar files, and the host of email Message-IDs.
    #[arg(long, env = "RAPAT_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Seconds a password reset token stays valid.
    #[arg(long, env = "RAPAT_PASSWORD_RESET_TTL_SECONDS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub password_reset_ttl_seconds: u64,
    /// Password reset requests accepted per email address within
    /// RAPAT_PASSWORD_RESET_WINDOW_SECONDS; more answer 429.
    #[arg(long, env = "RAPAT_PASSWORD_RESETS_PER_ADDRESS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub password_resets_per_address: u32,
    /// The window of RAPAT_PASSWORD_RESETS_PER_ADDRESS, in seconds.
    #[arg(long, env = "RAPAT_PASSWORD_RESET_WINDOW_SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub password_reset_window_seconds: u64,
    /// The directory recorded files are kept in (SPEC §10); every node of a
    /// deployment that runs the SFU or serves downloads needs the same one.
    #[arg(long, env = "RAPAT_RECORDINGS_DIR", default_value = "recordings", global = true)]
    pub recordings_dir: std::path::PathBuf,
    /// Days a recording is kept (from its start) before its file is deleted.
    /// Unset: recordings are kept forever.
    #[arg(long, env = "RAPAT_RECORDINGS_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub recordings_retention_days: Option<u32>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    pub fn event_store(&self) -> EventStoreConfig {
        let mut config = EventStoreConfig::for_namespace(self.namespace.clone());
        config.replicas = self.stream_replicas;
        config
    }

    pub fn projector(&self) -> ProjectorConfig {
        let mut config = ProjectorConfig::for_namespace(self.namespace.clone());
        config.linger = Duration::from_millis(self.projection_linger_ms);
        config
    }

    pub fn registration(&self) -> rapat_gateway::RegistrationConfig {
        rapat_gateway::RegistrationConfig {
            grace: Duration::from_secs(self.registration_grace_seconds),
            ..Default::default()
        }
    }

    pub fn reminders(&self) -> rapat_gateway::ReminderConfig {
        rapat_gateway::ReminderConfig {
            late_after: Duration::from_secs(self.reminder_late_after_seconds),
            ..Default::default()
        }
    }

    pub fn recording_retention(&self) -> rapat_gateway::RetentionConfig {
        let keep_for = self.recordings_retention_days.map(|days| Duration::from_secs(u64::from(days) * 24 * 3600));
        rapat_gateway::RetentionConfig { keep_for, ..Default::default() }
    }

    /// The email channel's settings, `None` (and said once) without `RAPAT_SMTP_URL`.
    pub fn email(&self) -> anyhow::Result<Option<rapat_delivery::email::EmailConfig>> {
        let Some(smtp_url) = self.smtp_url.clone() else {
            tracing::warn!("RAPAT_SMTP_URL is not set: the email channel is off (emails wait in the outbox)");
            return Ok(None);
        };
        let public_url = self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.http_addr));
        if self.public_url.is_none() {
            tracing::warn!(%public_url, "RAPAT_PUBLIC_URL is not set: links in emails use the listen address");
        }
        Ok(Some(rapat_delivery::email::EmailConfig {
            smtp_url,
            from: self.mail_from.clone(),
            public_url,
            token_key: rapat_domain::account::AccountTokenKey::derive(&jwt_secret()?),
            timeout: Duration::from_secs(30),
        }))
    }

    /// How the email and push workers pace themselves and retry.
    pub fn delivery(&self) -> rapat_delivery::WorkerConfig {
        rapat_delivery::WorkerConfig {
            retry: rapat_delivery::RetryPolicy {
                base: Duration::from_millis(self.delivery_retry_base_ms),
                max_delay: Duration::from_millis(self.delivery_retry_max_ms),
                give_up_after: Duration::from_secs(self.delivery_give_up_after_seconds),
            },
            ..Default::default()
        }
    }

    pub fn webhooks(&self) -> rapat_delivery::webhooks::WebhookConfig {
        rapat_delivery::webhooks::WebhookConfig {
            retry: rapat_delivery::RetryPolicy {
                base: Duration::from_millis(self.webhook_retry_base_ms),
                max_delay: Duration::from_millis(self.webhook_retry_max_ms),
                give_up_after: Duration::from_secs(self.webhook_give_up_after_seconds),
            },
            allow_private: self.webhook_allow_private,
            lease: Duration::from_secs(self.webhook_lease_seconds),
            ..Default::default()
        }
    }

    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_seconds)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    pub fn sfu(&self) -> rapat_sfu::SfuConfig {
        let mut config = rapat_sfu::SfuConfig::new(self.sfu_udp_addr);
        config.announce_ip = self.sfu_public_ip;
        config.port_range = self.sfu_port_range;
        config.workers = self.sfu_workers;
        config.max_peers_per_user = usize::from(self.sfu_max_peers_per_user);
        config.max_addresses_per_peer = usize::from(self.sfu_max_addresses_per_peer);
        config.tcp_bind = self.sfu_tcp_addr;
        // The same directory the gateway serves recordings from (SPEC §10).
        config.recordings_dir = self.recordings_dir.clone();
        config.tcp_limits = rapat_sfu::TcpLimits {
            max_connections: self.sfu_tcp_max_connections as usize,
            verify_within: Duration::from_secs(self.sfu_tcp_verify_seconds),
            write_queue: self.sfu_tcp_write_queue as usize,
        };
        config
    }

    /// The web push channel's settings (REST accepts subscriptions with them,
    /// the sender signs with them). A malformed key stops the process here.
    pub fn push(&self) -> anyhow::Result<rapat_delivery::push::PushConfig> {
        let vapid_private_key = match std::env::var("RAPAT_VAPID_PRIVATE_KEY") {
            Ok(key) if !key.trim().is_empty() => {
                rapat_delivery::push::VapidKey::parse(&key)?;
                Some(key)
            }
            Ok(_) | Err(std::env::VarError::NotPresent) => None,
            Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("RAPAT_VAPID_PRIVATE_KEY is not valid UTF-8"),
        };
        let vapid_subject = match &self.vapid_subject {
            Some(subject) if subject.starts_with("mailto:") || subject.starts_with("https://") => subject.clone(),
            Some(_) => anyhow::bail!("RAPAT_VAPID_SUBJECT must be a mailto: or https: URL"),
            None => rapat_delivery::push::PushConfig::default_subject(self.public_url.as_deref()),
        };
        Ok(rapat_delivery::push::PushConfig {
            vapid_private_key,
            vapid_subject,
            allow_insecure: self.push_allow_insecure,
            ..Default::default()
        })
    }

    pub fn gateway(&self) -> anyhow::Result<GatewayConfig> {
        let mut config = GatewayConfig::new(self.http_addr, jwt_secret()?);
        config.push = self.push()?;
        config.cors_origins = self.cors_origins.clone();
        config.access_ttl = Duration::from_secs(self.access_ttl_seconds);
        config.ice_servers = self.ice_servers.clone().map(|servers| servers.0).unwrap_or_default();
        config.turn = self.turn()?;
        config.chat_replicas = self.stream_replicas;
        config.public_url = self.public_url.clone();
        config.password_reset_ttl = Duration::from_secs(self.password_reset_ttl_seconds);
        config.password_reset_per_address = self.password_resets_per_address;
        config.password_reset_window = Duration::from_secs(self.password_reset_window_seconds);
        config.recordings_dir = self.recordings_dir.clone();
        self.apply_limits(&mut config);
        config.ws_max_sockets_per_user = self.ws_max_sockets_per_user;
        config.webhook_allow_private = self.webhook_allow_private;
        config.ws_max_sockets_per_room = self.ws_max_sockets_per_room;
        config.ws_max_message_bytes = self.ws_max_message_bytes;
        config.ws_read_buffer_bytes = self.ws_read_buffer_bytes as usize;
        config.ws_rate_limits = WsRateLimits {
            join_room: self.ws_rate_join_room,
            chat: self.ws_rate_chat,
            media: self.ws_rate_media,
            sdp: self.ws_rate_sdp,
            ice: self.ws_rate_ice,
            other: self.ws_rate_other,
        };
        Ok(config)
    }

    fn apply_limits(&self, config: &mut GatewayConfig) {
        config.auth_rate_limit = RateLimit {
            burst: self.auth_rate_burst.max(1),
            replenish_every: Duration::from_secs(60) / self.auth_rate_per_minute.max(1),
        };
        config.trusted_proxies = self.trusted_proxies.clone();
        if self.hash_workers > 0 {
            config.hashing.workers = self.hash_workers;
        }
        config.hashing.queue_timeout = Duration::from_millis(self.hash_queue_timeout_ms);
        config.room_join_failures = JoinFailureLimits {
            per_user_and_room: self.room_join_failures_per_user,
            per_room: self.room_join_failures_per_room,
            window: Duration::from_secs(self.room_join_failure_window_seconds.max(1)),
        };
        config.rooms_per_user_per_hour = self.rooms_per_user_per_hour;
        config.http = HttpLimits {
            header_timeout: Duration::from_secs(self.http_header_timeout_seconds.max(1)),
            body_timeout: Duration::from_secs(self.http_body_timeout_seconds.max(1)),
            idle_timeout: Duration::from_secs(self.http_idle_timeout_seconds.max(1)),
            max_connections: self.http_max_connections.max(1),
        };
        config.body_limit_bytes = self.http_max_body_bytes.max(1024);
        config.request_deadline = Duration::from_millis(self.request_deadline_ms.max(100));
    }
}

impl Settings {
    fn turn(&self) -> anyhow::Result<Option<rapat_gateway::TurnConfig>> {
        let urls: Vec<String> =
            self.turn_urls.iter().map(|url| url.trim().to_string()).filter(|url| !url.is_empty()).collect();
        let secret = std::env::var("RAPAT_TURN_SECRET").unwrap_or_default();
        match (urls.is_empty(), secret.is_empty()) {
            (true, true) => Ok(None),
            (false, false) => Ok(Some(rapat_gateway::TurnConfig {
                urls,
                secret,
                ttl: Duration::from_secs(self.turn_ttl_seconds.max(60)),
            })),
            (false, true) => anyhow::bail!("RAPAT_TURN_URLS is set but RAPAT_TURN_SECRET is not"),
            (true, false) => anyhow::bail!("RAPAT_TURN_SECRET is set but RAPAT_TURN_URLS is not"),
        }
    }
}

/// `RAPAT_JWT_SECRET` (at least 32 bytes) signs access tokens; every gateway of
/// a deployment needs the same one. Without it a random key is used, which is
/// fine for one process on a laptop and logged as a warning.
fn jwt_secret() -> anyhow::Result<Vec<u8>> {
    let secret: anyhow::Result<Vec<u8>> = match std::env::var("RAPAT_JWT_SECRET") {
        Ok(secret) if secret.len() >= 32 => Ok(secret.into_bytes()),
        Ok(_) => anyhow::bail!("RAPAT_JWT_SECRET must be at least 32 bytes"),
        Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("RAPAT_JWT_SECRET is not valid UTF-8"),
        Err(std::env::VarError::NotPresent) => {
            // One random key per process: its gateway and its email channel share it.
            static RANDOM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            Ok(RANDOM
                .get_or_init(|| {
                    tracing::warn!(
                        "RAPAT_JWT_SECRET is not set: using a random key, so tokens (and emailed reset and \
                         verification links) die with this process and a second process cannot verify them"
                    );
                    let mut secret = vec![0u8; 48];
                    rand::rng().fill_bytes(&mut secret);
                    secret
                })
                .clone())
        }
    };
    secret.context("reading RAPAT_JWT_SECRET")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        settings: Settings,
    }

    #[test]
    fn the_projection_linger_is_a_setting() {
        // The declared default, not a parse: a parse would take RAPAT_PROJECTION_LINGER_MS
        // from the environment the tests run in.
        let command = <Command as clap::CommandFactory>::command();
        let argument = command.get_arguments().find(|argument| argument.get_id() == "projection_linger_ms");
        let default: Vec<_> = argument.expect("declared").get_default_values().iter().collect();
        assert_eq!(default, ["50"]);
        let none = Command::try_parse_from(["rapat", "--projection-linger-ms", "0"]).expect("parses");
        assert_eq!(none.settings.projector().linger, Duration::ZERO);
        assert!(Command::try_parse_from(["rapat", "--projection-linger-ms", "60000"]).is_err(), "over 10 s is refused");
    }
}
