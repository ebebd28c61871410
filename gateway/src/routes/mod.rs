//! The REST API, one module per resource. Each module's `router()` registers its
//! handlers through utoipa-axum, so a route and its OpenAPI entry come from the
//! same `#[utoipa::path]` and cannot drift apart.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod contacts;
pub mod health;
pub mod invitations;
pub mod notifications;
pub mod push;
pub mod recovery;
mod responses;
pub mod rooms;
pub mod schema;
pub mod settings;
pub mod users;
pub mod webhooks;

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "rapat", description = "Event-sourced backend for browser video meetings: REST API v1"),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Registration, login, token refresh, logout, password reset and email verification"),
        (name = "users", description = "Profiles, contacts and presence"),
        (name = "rooms", description = "Rooms, participants and their history"),
        (name = "invitations", description = "Answering an invitation to a room (the host sends them under /rooms)"),
        (name = "analytics", description = "Meetings, participants and participant-minutes per day"),
        (name = "audit", description = "The audit trail of every stored event, for administrators"),
        (name = "notifications", description = "In-app notifications and what the caller has read"),
        (name = "webhooks", description = "Signed webhook endpoints and their delivery log, for administrators"),
        (name = "push", description = "Web push: the VAPID key and the caller's browser subscriptions"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// Every operation that takes a body may answer 408: the body must arrive whole
/// within `HttpLimits::body_timeout` (`crate::serve::body_deadline`). Applied to
/// the finished document, since the paths come from the routers.
pub fn document_request_timeouts(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    for item in openapi.paths.paths.values_mut() {
        for operation in [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten() {
            if operation.request_body.is_none() {
                continue;
            }
            let timeout = ResponseBuilder::new()
                .description("the request body did not arrive in time; the connection is closed")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("Failure"))).build(),
                )
                .build();
            operation.responses.responses.entry("408".to_string()).or_insert(timeout.into());
        }
    }
}

/// Every `/api/v1` route with its OpenAPI description (paths in the document
/// carry the `/api/v1` prefix). `rate_limited` wraps the
/// auth routes (login, register, refresh), which guess-and-retry attacks target.
pub fn api_router<L>(rate_limited: L) -> OpenApiRouter<AppState>
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service:
        tower::Service<axum::extract::Request, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Response: axum::response::IntoResponse + 'static,
    <L::Service as tower::Service<axum::extract::Request>>::Future: Send + 'static,
{
    let v1 = OpenApiRouter::new()
        .merge(auth::router().merge(recovery::router()).layer(rate_limited))
        .merge(users::router())
        .merge(contacts::router())
        .merge(rooms::router())
        .merge(invitations::router())
        .merge(settings::router())
        .merge(calendar::router())
        .merge(audit::router())
        .merge(analytics::router())
        .merge(notifications::router())
        .merge(webhooks::router())
        .merge(push::router());
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1);
    // After every route is in: the statuses all routes share (see `responses.rs`).
    utoipa::Modify::modify(&responses::CommonResponses, router.get_openapi_mut());
    router
}
