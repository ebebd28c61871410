//! `/push` (SPEC §7): web push. The deployment's VAPID public key, which a
//! browser subscribes with, and the caller's subscriptions, a `PushDevices`
//! aggregate whose id is the user's id. The push channel (`rapat-delivery`'s
//! `push`) sends to them.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use rapat_delivery::push::VapidKey;
use rapat_domain::push::{AuthSecret, EndpointPolicy, P256dhKey, PushCommand, PushEndpoint, UnsubscribeReason};
use rapat_projections::queries;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::response::{self, Data, Failure, Message};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(vapid_public_key)).routes(routes!(subscribe, unsubscribe))
}

/// The key a browser passes to `pushManager.subscribe` as `applicationServerKey`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VapidPublicKey {
    /// The uncompressed P-256 public key (65 bytes) in unpadded base64url.
    #[schema(pattern = "^[A-Za-z0-9_-]{87}$")]
    pub public_key: String,
}

/// A browser's `PushSubscription` as `JSON.stringify` gives it (its
/// `expirationTime` and any other field are ignored).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    /// The push service's URL for this subscription: https.
    #[schema(min_length = 1, max_length = 2048)]
    pub endpoint: String,
    pub keys: SubscriptionKeys,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SubscriptionKeys {
    /// The subscription's uncompressed P-256 public key (65 bytes), base64url.
    pub p256dh: String,
    /// The subscription's 16-byte authentication secret, base64url.
    pub auth: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnsubscribeRequest {
    #[schema(min_length = 1, max_length = 2048)]
    pub endpoint: String,
}

/// A subscription of the caller (never its keys).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub endpoint: String,
    pub created_at: DateTime<Utc>,
}

/// The deployment's VAPID key, read or made once per process.
async fn vapid_key(state: &AppState) -> Result<&VapidKey, ApiError> {
    let configured = state.config.push.vapid_private_key.as_deref();
    state.vapid.get_or_try_init(|| VapidKey::resolve(configured, &state.db)).await.map_err(|error| match error {
        rapat_delivery::push::VapidError::Store(query) if query.is_unavailable() => ApiError::unavailable(query),
        other => ApiError::internal(other),
    })
}

/// The deployment's VAPID public key (RFC 8292), for `applicationServerKey`.
#[utoipa::path(
    get,
    path = "/push/vapid-public-key",
    tag = "push",
    responses(
        (status = 200, description = "`data.publicKey`: base64url, uncompressed P-256", body = Data<VapidPublicKey>),
    )
)]
async fn vapid_public_key(State(state): State<AppState>) -> Result<Response, ApiError> {
    let key = vapid_key(&state).await?;
    Ok(response::ok(VapidPublicKey { public_key: key.public_key().to_owned() }))
}

/// Subscribes a browser of the caller to web push. Sending the same
/// subscription again changes nothing; new keys for a known endpoint replace
/// the old ones.
#[utoipa::path(
    post,
    path = "/push/subscriptions",
    tag = "push",
    security(("bearer" = [])),
    request_body = SubscribeRequest,
    responses(
        (status = 201, description = "`data` is the subscription", body = Data<SubscriptionView>),
        (status = 202, description = "stored, not yet visible: `stored_not_visible`", body = Failure),
        (status = 400, description = "the endpoint is not https (or is a private address), or a key is malformed", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 409, description = "the caller has the most subscriptions allowed: `too_many_subscriptions`", body = Failure),
    )
)]
async fn subscribe(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<SubscribeRequest>,
) -> Result<Response, ApiError> {
    let endpoint = PushEndpoint::parse(&body.endpoint, state.config.push.endpoint_policy())?;
    let p256dh = P256dhKey::parse(&body.keys.p256dh)?;
    let auth = AuthSecret::parse(&body.keys.auth)?;
    let command = PushCommand::Subscribe { user: caller.user_id, endpoint: endpoint.clone(), p256dh, auth };
    state.write(&state.push_devices, &caller.user_id.to_string(), command, caller.command()).await?;
    let rows = queries::push::subscriptions_of(&state.db, caller.user_id).await?;
    let created_at =
        rows.iter().find(|row| row.endpoint == endpoint.as_str()).map_or_else(Utc::now, |row| row.created_at);
    Ok(response::created(SubscriptionView { endpoint: endpoint.as_str().to_owned(), created_at }))
}

/// Unsubscribes a browser of the caller.
#[utoipa::path(
    delete,
    path = "/push/subscriptions",
    tag = "push",
    security(("bearer" = [])),
    request_body = UnsubscribeRequest,
    responses(
        (status = 200, description = "unsubscribed", body = Message),
        (status = 202, description = "stored, not yet visible: `stored_not_visible`", body = Failure),
        (status = 400, description = "the endpoint is not a URL", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 404, description = "the caller has no subscription with this endpoint", body = Failure),
    )
)]
async fn unsubscribe(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<UnsubscribeRequest>,
) -> Result<Response, ApiError> {
    // Parsed as leniently as any endpoint ever stored, so it compares the same.
    let endpoint = PushEndpoint::parse(&body.endpoint, EndpointPolicy::AllowLoopbackHttp)?;
    let command = PushCommand::Unsubscribe { user: caller.user_id, endpoint, reason: UnsubscribeReason::User };
    state.write(&state.push_devices, &caller.user_id.to_string(), command, caller.command()).await?;
    Ok(response::message("unsubscribed"))
}
