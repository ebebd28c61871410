//! Webhooks (SPEC §7), for administrators: endpoints, their secrets and their
//! delivery log. Each endpoint is a `Webhook` aggregate; the deliveries are
//! queued by the webhooks projection and sent by `rapat_delivery::webhooks`. A
//! URL is checked here against the SSRF rule (its host must resolve to public
//! addresses unless `RAPAT_WEBHOOK_ALLOW_PRIVATE`), and again at every delivery.

use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use rand::RngCore;
use rapat_delivery::webhooks::{ResolveError, check_url};
use rapat_domain::webhook::{
    EventTypePattern, WebhookCommand, WebhookError, WebhookSecret, WebhookUrl, parse_description, parse_event_types,
};
use rapat_projections::queries::webhooks::{self as webhook_queries, DeliveryFilter, DeliveryRow, WebhookRow};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuthUser, require_admin};
use crate::error::{ApiError, DomainRejection};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::response::{self, Data, Failure};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

impl DomainRejection for WebhookError {
    fn to_api_error(&self) -> ApiError {
        let message = self.to_string();
        match self {
            WebhookError::BadUrl(_) => ApiError::bad_request("invalid_url", message),
            WebhookError::BadEventType(_) | WebhookError::NoEventTypes | WebhookError::TooManyEventTypes => {
                ApiError::bad_request("invalid_event_types", message)
            }
            WebhookError::BadDescription(_) => ApiError::bad_request("invalid_description", message),
            WebhookError::BadSecret => ApiError::internal(message),
            WebhookError::NotFound => ApiError::not_found("webhook_not_found", message),
            WebhookError::AlreadyRegistered => ApiError::conflict("webhook_exists", message),
        }
    }
}

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterWebhook {
    /// Where deliveries are POSTed: http or https. Its host must resolve to public
    /// addresses (unless the deployment allows private ones).
    #[schema(max_length = 2048)]
    pub url: String,
    /// Which events: an event type (`RoomCreated`), an aggregate type and `.*`
    /// (`room.*`), or `*`.
    #[schema(min_items = 1, max_items = 100)]
    pub event_types: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// What to change; at least one field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWebhook {
    #[schema(max_length = 2048)]
    pub url: Option<String>,
    #[schema(min_items = 1, max_items = 100)]
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
}

/// An endpoint (its secret is shown only when registered or rotated).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// While a rotated-out secret still signs beside the current one: until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl From<WebhookRow> for WebhookView {
    fn from(row: WebhookRow) -> Self {
        let now = Utc::now();
        Self {
            id: row.id,
            url: row.url,
            event_types: row.event_types,
            description: row.description,
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
            previous_secret_expires_at: row.previous_secret_expires_at.filter(|until| *until > now),
        }
    }
}

/// A registered endpoint with its signing secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_...`: verify deliveries with it (Standard Webhooks). Not shown again.
    pub secret: String,
}

/// A new secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    pub secret: String,
    /// Until then deliveries carry a signature with the previous secret too.
    pub previous_secret_expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// One event's delivery to an endpoint: where it stands and how the last attempt went.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: Uuid,
    /// The event's id, also the `webhook-id` header of every attempt.
    pub event_id: Uuid,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(row: DeliveryRow) -> Self {
        Self {
            id: row.id,
            event_id: row.event_id,
            event_type: row.event_type,
            status: row.status,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            last_status_code: row.last_status_code.and_then(|code| u16::try_from(code).ok()),
            last_error: row.last_error,
            last_attempt_at: row.last_attempt_at,
            next_attempt_at: row.next_attempt_at,
            delivered_at: row.delivered_at,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct DeliveriesQuery {
    /// Only deliveries in this state.
    #[param(inline)]
    status: Option<DeliveryStatus>,
    /// Deliveries per page, 1 to 500; defaults to 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(min_length = 1, pattern = "^[0-9]+\\.[0-9]+$")]
    cursor: Option<String>,
}

/// `{"success": true, "data": [...], "nextCursor": "..." | null}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    success: bool,
    data: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

fn new_secret() -> WebhookSecret {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    WebhookSecret::from_key(&key)
}

fn rejected(error: WebhookError) -> ApiError {
    error.to_api_error()
}

async fn parse_url(state: &AppState, raw: &str) -> Result<WebhookUrl, ApiError> {
    let url = WebhookUrl::parse(raw).map_err(rejected)?;
    match check_url(&url, state.config.webhook_allow_private).await {
        Err(ResolveError::Private(refused)) => Err(ApiError::bad_request("private_address", refused.to_string())),
        // A name that does not resolve now may later; every delivery checks again.
        Ok(()) | Err(ResolveError::Lookup { .. }) => Ok(url),
    }
}

fn parse_patterns(raw: &[String]) -> Result<Vec<EventTypePattern>, ApiError> {
    parse_event_types(raw).map_err(rejected)
}

async fn endpoint(state: &AppState, id: Uuid) -> Result<WebhookRow, ApiError> {
    webhook_queries::find(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook_not_found", "no such webhook"))
}

/// Registers an endpoint (administrators only). The answer is the only time the
/// signing secret is shown.
#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = RegisterWebhook,
    responses(
        (status = 201, description = "`data` is the endpoint with its `secret`", body = Data<RegisteredWebhook>),
        (status = 400, description = "a bad URL or scheme, a URL whose host is a private address (`private_address`), no or malformed event type patterns", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not an administrator", body = Failure),
    )
)]
async fn register_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<RegisterWebhook>,
) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    let event_types = parse_patterns(&body.event_types)?;
    let description = parse_description(body.description.as_deref().unwrap_or("")).map_err(rejected)?;
    let url = parse_url(&state, &body.url).await?;
    let id = Uuid::new_v4();
    let secret = new_secret();
    let command = WebhookCommand::Register { url, event_types, description, secret: secret.clone() };
    state.write(&state.webhooks, &id.to_string(), command, auth.command()).await?;
    let webhook = endpoint(&state, id).await?.into();
    Ok(response::created(RegisteredWebhook { webhook, secret: secret.expose().to_owned() }))
}

/// Every endpoint (administrators only).
#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "webhooks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`data` is every endpoint, oldest first", body = Data<Vec<WebhookView>>),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not an administrator", body = Failure),
    )
)]
async fn list_webhooks(State(state): State<AppState>, auth: AuthUser) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    let rows = webhook_queries::list(&state.db).await?;
    Ok(response::ok(rows.into_iter().map(WebhookView::from).collect::<Vec<_>>()))
}

/// One endpoint (administrators only).
#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "`data` is the endpoint", body = Data<WebhookView>),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not an administrator", body = Failure),
        (status = 404, description = "no such endpoint", body = Failure),
    )
)]
async fn get_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    Ok(response::ok(WebhookView::from(endpoint(&state, id).await?)))
}

/// Changes an endpoint's URL, event types, description, or whether it is enabled
/// (a disabled endpoint is queued nothing; what was queued waits).
#[utoipa::path(
    patch,
    path = "/webhooks/{id}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "`data` is the endpoint as changed", body = Data<WebhookView>),
        (status = 400, description = "nothing to change, a bad URL, a private address or bad patterns", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not an administrator", body = Failure),
        (status = 404, description = "no such endpoint", body = Failure),
    )
)]
async fn update_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    if body.url.is_none() && body.event_types.is_none() && body.enabled.is_none() && body.description.is_none() {
        return Err(ApiError::bad_request(
            "nothing_to_change",
            "give at least one of url, eventTypes, enabled, description",
        ));
    }
    let event_types = body.event_types.as_deref().map(parse_patterns).transpose()?;
    let description = body.description.as_deref().map(parse_description).transpose().map_err(rejected)?;
    let url = match &body.url {
        Some(raw) => Some(parse_url(&state, raw).await?),
        None => None,
    };
    endpoint(&state, id).await?;
    let command = WebhookCommand::Update { url, event_types, enabled: body.enabled, description };
    state.write(&state.webhooks, &id.to_string(), command, auth.command()).await?;
    Ok(response::ok(WebhookView::from(endpoint(&state, id).await?)))
}

/// Deletes an endpoint: nothing more is sent to it.
#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "deleted", body = crate::response::Message),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not an administrator", body = Failure),
        (status = 404, description = "no such endpoint", body = Failure),
    )
)]
async fn delete_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    endpoint(&state, id).await?;
    state.write(&state.webhooks, &id.to_string(), WebhookCommand::Delete, auth.command()).await?;
    Ok(response::message("webhook deleted"))
}

/// A new signing secret; for 24 hours deliveries are signed with the previous
/// one too, so receivers can switch without losing a delivery.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "`data.secret` is the new secret, shown only here", body = Data<RotatedSecret>),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not an administrator", body = Failure),
        (status = 404, description = "no such endpoint", body = Failure),
    )
)]
async fn rotate_secret(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    endpoint(&state, id).await?;
    let secret = new_secret();
    let at = Utc::now();
    let command = WebhookCommand::RotateSecret { secret: secret.clone(), at };
    state.write(&state.webhooks, &id.to_string(), command, auth.command()).await?;
    let previous_secret_expires_at = at + rapat_domain::webhook::PREVIOUS_SECRET_OVERLAP;
    Ok(response::ok(RotatedSecret { secret: secret.expose().to_owned(), previous_secret_expires_at }))
}

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// The endpoint's deliveries, newest event first: status, attempts, the last
/// answer or error, and when a pending one is tried next.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The endpoint's id"), DeliveriesQuery),
    responses(
        (status = 200, description = "One page of deliveries, newest event first", body = DeliveryPage),
        (status = 400, description = "a bad id, status, limit or cursor", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not an administrator", body = Failure),
        (status = 404, description = "no such endpoint", body = Failure),
    )
)]
async fn list_deliveries(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    endpoint(&state, id).await?;
    let filter = DeliveryFilter { status: query.status.map(|status| status.as_str().to_owned()), before, limit };
    let (rows, next) = webhook_queries::deliveries(&state.db, id, &filter).await?;
    let data: Vec<DeliveryView> = rows.into_iter().map(DeliveryView::from).collect();
    let next_cursor = next.map(|(sequence, index)| format!("{sequence}.{index}"));
    let body = serde_json::json!({ "success": true, "data": data, "nextCursor": next_cursor });
    Ok(axum::response::IntoResponse::into_response(axum::Json(body)))
}

fn decode_cursor(raw: &str) -> Result<(i64, i32), ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "cursor is not one this API gave");
    let (sequence, index) = raw.split_once('.').ok_or_else(bad)?;
    Ok((sequence.parse().map_err(|_| bad())?, index.parse().map_err(|_| bad())?))
}

/// Sends a failed delivery again: it is queued as pending, ahead of the
/// endpoint's later events (stream order), with a fresh retry schedule.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/deliveries/{deliveryId}/retry",
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The endpoint's id"),
        ("deliveryId" = Uuid, Path, description = "The delivery's id"),
    ),
    responses(
        (status = 200, description = "`data` is the delivery, pending again", body = Data<DeliveryView>),
        (status = 400, description = "an id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller is not an administrator", body = Failure),
        (status = 404, description = "no such endpoint or delivery", body = Failure),
        (status = 409, description = "the delivery has not failed (`delivery_not_failed`)", body = Failure),
    )
)]
async fn retry_delivery(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath((id, delivery_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<Response, ApiError> {
    require_admin(&state, &auth).await?;
    endpoint(&state, id).await?;
    let not_found = || ApiError::not_found("delivery_not_found", "no such delivery");
    let delivery = webhook_queries::delivery(&state.db, id, delivery_id).await?.ok_or_else(not_found)?;
    if delivery.status != "failed" {
        return Err(ApiError::conflict("delivery_not_failed", "only a failed delivery can be retried"));
    }
    let command = WebhookCommand::RetryDelivery { delivery_id };
    state.write(&state.webhooks, &id.to_string(), command, auth.command()).await?;
    let delivery = webhook_queries::delivery(&state.db, id, delivery_id).await?.ok_or_else(not_found)?;
    Ok(response::ok(DeliveryView::from(delivery)))
}
