//! The OpenAPI document matches SPEC §3 exactly, and everything it documents is
//! really served.

use std::collections::BTreeSet;

use rapat_domain::room::MaxUsers;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// SPEC §3 for auth, users, contacts, presence, rooms (with their chat), audit and
/// analytics; SPEC §6 for invitations, settings and the calendar.
/// analytics; SPEC §6 for notifications.
const SPEC_ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/api/v1/users/profile"),
    ("PUT", "/api/v1/users/profile"),
    ("GET", "/api/v1/users/contacts"),
    ("POST", "/api/v1/users/contacts"),
    ("DELETE", "/api/v1/users/contacts/{contactId}"),
    ("GET", "/api/v1/users/{userId}/presence"),
    ("POST", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/history"),
    ("GET", "/api/v1/rooms/{roomId}"),
    ("PUT", "/api/v1/rooms/{roomId}"),
    ("POST", "/api/v1/rooms/{roomId}/join"),
    ("POST", "/api/v1/rooms/{roomId}/leave"),
    ("GET", "/api/v1/rooms/{roomId}/participants"),
    ("POST", "/api/v1/rooms/{roomId}/end"),
    ("POST", "/api/v1/rooms/{roomId}/participants/{userId}/mute"),
    ("POST", "/api/v1/rooms/{roomId}/participants/{userId}/allow-unmute"),
    ("POST", "/api/v1/rooms/{roomId}/participants/{userId}/remove"),
    ("GET", "/api/v1/rooms/{roomId}/events"),
    ("GET", "/api/v1/rooms/{roomId}/chat"),
    ("GET", "/api/v1/analytics/rooms/{roomId}"),
    ("GET", "/api/v1/analytics/daily"),
    ("GET", "/api/v1/audit/events"),
    ("POST", "/api/v1/rooms/{roomId}/invitations"),
    ("GET", "/api/v1/rooms/{roomId}/invitations"),
    ("DELETE", "/api/v1/rooms/{roomId}/invitations/{invitationId}"),
    ("GET", "/api/v1/users/invitations"),
    ("POST", "/api/v1/invitations/{invitationId}/accept"),
    ("POST", "/api/v1/invitations/{invitationId}/decline"),
    ("GET", "/api/v1/rooms/upcoming"),
    ("GET", "/api/v1/rooms/{roomId}/calendar.ics"),
    ("GET", "/api/v1/users/settings"),
    ("PUT", "/api/v1/users/settings"),
    // SPEC §6.
    ("GET", "/api/v1/notifications"),
    ("GET", "/api/v1/notifications/unread-count"),
    ("POST", "/api/v1/notifications/{id}/read"),
    ("POST", "/api/v1/notifications/read-all"),
    // SPEC §7.
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks/{id}"),
    ("PATCH", "/api/v1/webhooks/{id}"),
    ("DELETE", "/api/v1/webhooks/{id}"),
    ("POST", "/api/v1/webhooks/{id}/rotate-secret"),
    ("GET", "/api/v1/webhooks/{id}/deliveries"),
    ("POST", "/api/v1/webhooks/{id}/deliveries/{deliveryId}/retry"),
    // SPEC §7: web push.
    ("GET", "/api/v1/push/vapid-public-key"),
    ("POST", "/api/v1/push/subscriptions"),
    ("DELETE", "/api/v1/push/subscriptions"),
    ("POST", "/api/v1/auth/password-reset"),
    ("POST", "/api/v1/auth/password-reset/confirm"),
    ("POST", "/api/v1/auth/verify-email"),
    // SPEC §10.
    ("POST", "/api/v1/rooms/{roomId}/recording/start"),
    ("POST", "/api/v1/rooms/{roomId}/recording/stop"),
    ("GET", "/api/v1/rooms/{roomId}/recordings"),
    ("GET", "/api/v1/rooms/{roomId}/recordings/{id}"),
];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

/// Every (METHOD, path) the document describes.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// `{roomId}` and the like, each replaced by a fresh UUID.
fn fill_parameters(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                Uuid::new_v4().to_string()
            } else {
                segment.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_document_lists_exactly_the_spec_endpoints() {
    let app = spawn_app().await;
    let document = app.openapi_document().await;
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1 expected, got {version}");
    assert!(document["info"]["title"].is_string());
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    let documented = operations(&document);
    let expected: BTreeSet<(String, String)> =
        SPEC_ENDPOINTS.iter().map(|(method, path)| (method.to_string(), path.to_string())).collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing from the document: {missing:?}; not in SPEC §3: {extra:?}"
    );

    // Every room operation is tagged and states that it needs a bearer token.
    for (method, path) in documented.iter().filter(|(_, path)| path.starts_with("/api/v1/rooms")) {
        let operation = &document["paths"][path][method.to_lowercase()];
        assert_eq!(operation["tags"], json!(["rooms"]), "{method} {path}");
        assert_eq!(operation["security"], json!([{ "bearer": [] }]), "{method} {path}");
        assert!(operation["responses"]["401"].is_object(), "{method} {path} documents its 401");
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app().await;
    let document = app.openapi_document().await;
    for (method, path) in operations(&document) {
        let url = fill_parameters(&path);
        let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let answer = app.request(method.clone(), &url, None, body).await;
        let status = answer.status.as_u16();
        assert_ne!(status, 405, "{method} {path} is documented but its method is not served: {:#}", answer.body);
        assert!(
            !(status == 404 && answer.error_code() == "route_not_found"),
            "{method} {path} is documented but not routed: {:#}",
            answer.body
        );
        assert!(status < 500, "{method} {path} answered {status}: {:#}", answer.body);
    }
}

/// The document states the formats and limits the server enforces, so that a
/// generated client and a fuzzer agree with the server (`infra/run-schemathesis.sh`
/// checks the whole API against it).
#[tokio::test]
async fn the_document_states_the_limits_the_server_enforces() {
    let app = spawn_app().await;
    let document = app.openapi_document().await;
    let schemas = &document["components"]["schemas"];
    let field = |schema: &str, name: &str| schemas[schema]["properties"][name].clone();

    let name = field("CreateRoomRequest", "name");
    assert_eq!((name["minLength"].as_u64(), name["maxLength"].as_u64()), (Some(1), Some(100)), "{name:#}");
    assert!(name["pattern"].as_str().is_some_and(|p| p.contains(r"\u0000-\u001F")), "{name:#}");
    let description = field("CreateRoomRequest", "description");
    assert_eq!(description["maxLength"], 1000);
    assert!(description["pattern"].is_string());
    let max_users = field("CreateRoomRequest", "maxUsers");
    assert_eq!(
        (max_users["minimum"].as_u64(), max_users["maximum"].as_u64()),
        (Some(1), Some(u64::from(MaxUsers::LIMIT)))
    );
    let scheduled_at = field("CreateRoomRequest", "scheduledAt");
    assert_eq!(scheduled_at["format"], "date-time");
    assert!(scheduled_at["pattern"].as_str().is_some_and(|p| p.starts_with("^(19[7-9]")), "{scheduled_at:#}");
    assert_eq!(field("UpdateRoomRequest", "maxUsers")["maximum"], MaxUsers::LIMIT);
    for person in ["firstName", "lastName"] {
        assert_eq!(field("RegisterRequest", person)["minLength"], 1, "{person}");
        assert!(field("UpdateProfileRequest", person)["pattern"].is_string(), "{person}");
    }
    let email = field("RegisterRequest", "email");
    assert_eq!(email["maxLength"], 254);
    assert!(email["pattern"].as_str().is_some_and(|p| p.contains('@')), "{email:#}");
    assert!(field("UpdateProfileRequest", "avatar")["pattern"].as_str().is_some_and(|p| p.contains("base64")));

    let parameter = |path: &str, name: &str| {
        let parameters = document["paths"][path]["get"]["parameters"].as_array().cloned().unwrap_or_default();
        parameters.into_iter().find(|p| p["name"] == name).map(|p| p["schema"].clone()).unwrap_or_default()
    };
    assert_eq!(parameter("/api/v1/rooms/history", "page")["maximum"], 1_000_000);
    assert_eq!(parameter("/api/v1/audit/events", "from")["format"], "date-time");
    assert_eq!(parameter("/api/v1/audit/events", "aggregateType")["minLength"], 1);
    assert!(parameter("/api/v1/audit/events", "actor")["pattern"].is_string());
    assert_eq!(parameter("/api/v1/analytics/daily", "to")["format"], "date");
    assert_eq!(parameter("/api/v1/rooms/{roomId}/chat", "before")["maximum"].as_u64(), Some(i64::MAX as u64));

    // Statuses every route can answer for the same reasons are documented on each.
    for (method, path) in operations(&document) {
        let operation = &document["paths"][&path][method.to_lowercase()];
        let responses = &operation["responses"];
        assert!(responses["503"].is_object(), "{method} {path} documents no 503");
        if operation["requestBody"].is_object() {
            assert!(responses["413"].is_object() && responses["400"].is_object(), "{method} {path}: 400 and 413");
        }
        let needs_token = operation["security"].as_array().is_some_and(|s| !s.is_empty() && !s.contains(&json!({})));
        if needs_token {
            assert!(responses["401"].is_object(), "{method} {path} documents no 401");
        }
    }
}
