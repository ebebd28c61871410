//! Builds the HTTP application: routes, middleware, listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cqrs_es::Aggregate as _;
use metrics_exporter_prometheus::PrometheusHandle;
use rapat_commands::{Argon2idHasher, CommandBus, EventStoreConfig, JetStreamEventStore, StoreError};
use rapat_domain::services::{DomainServices, PasswordHasher};
use rapat_domain::session::Session;
use rapat_projections::ProjectionPositions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::auth::REQUEST_ID_HEADER;
use crate::client_addr::ClientAddr;
use crate::config::GatewayConfig;
use crate::error::ApiError;
use crate::metrics;
use crate::presence::Presence;
use crate::routes;
use crate::session_cache::SessionCache;
use crate::shutdown::{Shutdown, refuse_while_draining};
use crate::state::{AppState, Inner};
use crate::tokens::TokenKeys;

/// What the gateway needs from the rest of the process.
pub struct Backends {
    pub nats: async_nats::Client,
    pub event_store: EventStoreConfig,
    pub db: PgPool,
    pub positions: ProjectionPositions,
    /// The process's Prometheus recorder, served at `/metrics`.
    pub metrics: Option<PrometheusHandle>,
    /// When to drain and when to stop (see `Shutdown`).
    pub shutdown: Shutdown,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error("RAPAT_JWT_SECRET must be at least 32 bytes")]
    WeakJwtSecret,
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    http_limits: crate::config::HttpLimits,
    shutdown: Shutdown,
}

impl Application {
    pub async fn build(config: GatewayConfig, backends: Backends) -> Result<Self, StartError> {
        if config.jwt_secret.len() < 32 {
            return Err(StartError::WeakJwtSecret);
        }
        let shutdown = backends.shutdown.clone();
        let state = build_state(config.clone(), backends).await?;
        let listener =
            TcpListener::bind(config.bind).await.map_err(|source| StartError::Bind { address: config.bind, source })?;
        let address = listener.local_addr().map_err(|source| StartError::Bind { address: config.bind, source })?;
        Ok(Self { listener, router: router(state), address, http_limits: config.http, shutdown })
    }

    /// The bound address (the real port when the configured one was 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until the `Shutdown` given in `Backends` stops, then returns once
    /// every HTTP request has been answered and every WebSocket closed.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        crate::serve::serve(self.listener, self.router, self.http_limits, self.shutdown.stop_token()).await?;
        self.shutdown.sessions_closed().await;
        Ok(())
    }
}

async fn build_state(config: GatewayConfig, backends: Backends) -> Result<AppState, StartError> {
    let Backends { nats, event_store, db, positions, metrics, shutdown } = backends;
    let passwords: Arc<dyn PasswordHasher> = Arc::new(Argon2idHasher::with_limits(config.hashing));
    let services = DomainServices::new(Arc::clone(&passwords));
    let jetstream = async_nats::jetstream::new(nats.clone());
    // The event store's namespace names everything else of this gateway on NATS
    // too: chat, presence, signaling and the event subjects it follows.
    let namespace = event_store.namespace.clone();
    let replicas = event_store.replicas;
    let session_cache = Arc::new(SessionCache::new(config.session_cache_ttl));
    let session_subjects = namespace.event_subject(Session::TYPE, "*");
    let signaling = Arc::new(crate::ws::Hub::new(nats.clone(), namespace.clone()));
    let revocations = Arc::clone(&session_cache).follow_revocations(
        nats.clone(),
        namespace.events_stream(),
        session_subjects,
        shutdown.stop_token(),
    );
    tokio::spawn(revocations);
    Ok(AppState::new(Inner {
        accounts: CommandBus::new(
            JetStreamEventStore::open(nats.clone(), event_store.clone()).await?,
            services.clone(),
        ),
        emails: CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ()),
        rooms: CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, services),
        contacts: CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ()),
        sessions: CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ()),
        invitations: CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ()),
        settings: CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ()),
        inboxes: CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ()),
        webhooks: CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, ()),
        push_devices: CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store).await?, ()),
        vapid: tokio::sync::OnceCell::new(),
        presence: Presence::open(&jetstream, &namespace.presence_bucket(), replicas).await?,
        session_cache,
        metrics,
        tokens: TokenKeys::new(&config.jwt_secret, config.access_ttl, config.refresh_ttl),
        db,
        positions,
        nats,
        signaling,
        limits: crate::limits::Limits::new(&config),
        client_addr: ClientAddr::new(&config.trusted_proxies),
        shutdown,
        recordings: Arc::new(rapat_recording::LocalDirStore::new(config.recordings_dir.clone())),
        config,
        passwords,
    }))
}

/// The whole HTTP surface with its middleware.
pub fn router(state: AppState) -> Router {
    let limit = state.config.auth_rate_limit;
    let governor = GovernorConfigBuilder::default()
        .key_extractor(state.client_addr.clone())
        .period(limit.replenish_every)
        .burst_size(limit.burst.max(1))
        .finish()
        .expect("a non-zero period and burst make a valid rate limit");
    let rate_limited = GovernorLayer::new(governor).error_handler(|error| match error {
        tower_governor::GovernorError::TooManyRequests { wait_time, .. } => {
            ApiError::too_many_requests(wait_time).into_response()
        }
        other => ApiError::internal(other).into_response(),
    });

    let (api, mut openapi) = routes::api_router(rate_limited).split_for_parts();
    routes::document_request_timeouts(&mut openapi);
    let openapi = Arc::new(openapi);
    let body_limit = state.config.body_limit_bytes;
    let body_timeout = state.config.http.body_timeout;
    let cors = cors_layer(&state.config.cors_origins);
    let shutdown = state.shutdown.clone();

    Router::new()
        .merge(api)
        .route("/api/v1/openapi.json", get(move || async move { axum::Json(openapi.as_ref().clone()) }))
        .route("/ws", get(crate::ws::handler))
        .merge(crate::web::router())
        .layer(axum::middleware::from_fn_with_state(state.config.request_deadline, crate::deadline::request_deadline))
        // Everything above is new work, refused while draining; the probes and
        // metrics below keep answering to the end.
        .layer(axum::middleware::from_fn_with_state(shutdown, refuse_while_draining))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(|State(state): State<AppState>| async move { metrics::render(state.metrics.as_ref()) }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(body_timeout, crate::serve::body_deadline))
        .layer(cors)
        .layer(security_headers())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::from_fn(metrics::record_http))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(REQUEST_ID_HEADER)))
        .layer(SetRequestIdLayer::new(HeaderName::from_static(REQUEST_ID_HEADER), MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unfit_request_id))
}

/// A client's `x-request-id` becomes the correlation id of the events its request
/// stores and is echoed back: it is kept only when it is 1 to 128 visible ASCII
/// characters, otherwise removed so that a generated one replaces it.
async fn drop_unfit_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    let fit = |value: &HeaderValue| {
        let bytes = value.as_bytes();
        (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
    };
    let headers = request.headers_mut();
    let values: Vec<&HeaderValue> = headers.get_all(REQUEST_ID_HEADER).iter().collect();
    let keep = match values.as_slice() {
        [] => true,
        [only] => fit(only),
        _ => false,
    };
    if !keep {
        headers.remove(REQUEST_ID_HEADER);
    }
    request
}

/// The longest client request id kept.
const MAX_REQUEST_ID_LEN: usize = 128;

fn cors_layer(origins: &[String]) -> CorsLayer {
    let allowed: Vec<HeaderValue> = origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(crate::idempotency::HEADER),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

fn security_headers() -> tower::layer::util::Stack<
    SetResponseHeaderLayer<HeaderValue>,
    tower::layer::util::Stack<SetResponseHeaderLayer<HeaderValue>, SetResponseHeaderLayer<HeaderValue>>,
> {
    let nosniff =
        SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let frames = SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    let referrer = SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    tower::layer::util::Stack::new(nosniff, tower::layer::util::Stack::new(frames, referrer))
}

/// One span per request, continuing the caller's W3C trace when it sent one.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let span =
        tracing::info_span!("request", method = %request.method(), uri = %request.uri(), version = ?request.version());
    rapat_telemetry::continue_http_trace(&span, request.headers());
    span
}

async fn not_found() -> Response {
    ApiError::not_found("route_not_found", "no such endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
    .into_response()
}
