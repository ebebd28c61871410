//! Garbage bodies and paths on the auth, profile and contact endpoints: always a
//! 400 (413 when too large) in the error envelope, never a 500, and the server
//! keeps answering.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestResponse, spawn_app};

const JSON: &str = "application/json";

/// An endpoint that takes a body, with the token it needs (if any).
struct Endpoint {
    method: Method,
    path: &'static str,
    token: Option<String>,
}

/// Asserts a refusal in the SPEC's envelope with one of `statuses`.
#[track_caller]
fn assert_refused(response: &TestResponse, statuses: &[u16], what: &str) {
    assert!(statuses.contains(&response.status.as_u16()), "{what}: got {} {:#}", response.status, response.body);
    assert_eq!(response.body["success"], json!(false), "{what}: {:#}", response.body);
    assert!(response.error_code().len() > 1, "{what}: {:#}", response.body);
    assert!(response.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {:#}", response.body);
}

/// Bodies no endpoint of ours accepts, whatever its fields: (what, content type, bytes).
fn garbage() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("a JSON array", JSON, b"[]".to_vec()),
        ("an array of the right object", JSON, br#"[{"email": "a@example.com", "password": "x"}]"#.to_vec()),
        ("an array of field values", JSON, br#"["a@example.com", "correct horse 1", "Ana", "B"]"#.to_vec()),
        ("a JSON string", JSON, br#""hello""#.to_vec()),
        ("a JSON number", JSON, b"42".to_vec()),
        ("JSON null", JSON, b"null".to_vec()),
        ("truncated JSON", JSON, br#"{"email": "a@"#.to_vec()),
        ("not JSON at all", JSON, b"hello there".to_vec()),
        ("invalid UTF-8 in a string", JSON, b"{\"email\": \"\xff\xfe\xfd\", \"token\": \"\xc3\x28\"}".to_vec()),
        ("invalid UTF-8 bytes", JSON, b"\xff\xfe\x00\x01".to_vec()),
        ("an empty body", JSON, Vec::new()),
        ("an unknown field", JSON, br#"{"bogus": true}"#.to_vec()),
        ("a NUL field name", JSON, b"{\"\\u0000\": 1}".to_vec()),
        ("deep nesting", JSON, "[".repeat(100_000).into_bytes()),
        ("text/plain", "text/plain", br#"{"email": "a@example.com"}"#.to_vec()),
        ("a form", "application/x-www-form-urlencoded", b"email=a%40example.com&password=x".to_vec()),
        ("XML", "application/xml", b"<user><email>a@example.com</email></user>".to_vec()),
    ]
}

async fn endpoints(app: &TestApp) -> Vec<Endpoint> {
    let user = app.new_user("Garbage").await;
    let token = Some(user.token);
    vec![
        Endpoint { method: Method::POST, path: "/api/v1/auth/register", token: None },
        Endpoint { method: Method::POST, path: "/api/v1/auth/login", token: None },
        Endpoint { method: Method::POST, path: "/api/v1/auth/refresh", token: None },
        Endpoint { method: Method::POST, path: "/api/v1/auth/logout", token: None },
        Endpoint { method: Method::PUT, path: "/api/v1/users/profile", token: token.clone() },
        Endpoint { method: Method::POST, path: "/api/v1/users/contacts", token },
    ]
}

/// The server still serves real requests.
async fn assert_still_answering(app: &TestApp) {
    let user = app.new_user("Survivor").await;
    app.get("/api/v1/users/profile", &user.token).await.expect(200);
}

#[tokio::test]
async fn garbage_bodies_get_400_on_every_endpoint() {
    let app = spawn_app().await;
    for endpoint in endpoints(&app).await {
        for (what, content_type, body) in garbage() {
            // Logout's body is optional: an empty one (or JSON null) is no body,
            // and then the missing bearer token is what is wrong.
            let no_body = body.is_empty() || body == b"null";
            let statuses: &[u16] = if endpoint.path.ends_with("/logout") && no_body { &[401] } else { &[400] };
            let response = app
                .send_raw(endpoint.method.clone(), endpoint.path, endpoint.token.as_deref(), content_type, body)
                .await;
            assert_refused(&response, statuses, &format!("{} {} with {what}", endpoint.method, endpoint.path));
        }
    }
    assert_still_answering(&app).await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_on_every_endpoint() {
    let app = spawn_app().await;
    let huge = json!({ "email": "x".repeat(2 * 1024 * 1024) }).to_string().into_bytes();
    for endpoint in endpoints(&app).await {
        let response =
            app.send_raw(endpoint.method.clone(), endpoint.path, endpoint.token.as_deref(), JSON, huge.clone()).await;
        response.expect_error(413, "body_too_large");
    }
    assert_still_answering(&app).await;
}

#[tokio::test]
async fn wrong_types_missing_fields_and_huge_values_get_400() {
    let app = spawn_app().await;
    let endpoints = endpoints(&app).await;
    let [register, login, refresh, logout, profile, contacts] = &endpoints[..] else {
        panic!("six endpoints");
    };
    let mega = "x".repeat(1_000_000);
    let mega_email = format!("{}@example.com", "a".repeat(1_000_000));
    let user = |email: Value, password: Value, first: Value, last: Value| json!({ "email": email, "password": password, "firstName": first, "lastName": last });
    let ok = |text: &str| json!(text);
    let cases: Vec<(&Endpoint, Value, &[u16])> = vec![
        (register, user(json!(1), ok("correct horse 1"), ok("A"), ok("B")), &[400]),
        (register, user(ok("a@example.com"), json!(["correct horse 1"]), ok("A"), ok("B")), &[400]),
        (register, user(ok("a@example.com"), ok("correct horse 1"), json!({ "name": "A" }), ok("B")), &[400]),
        (register, user(ok("a@example.com"), ok("correct horse 1"), ok("A"), Value::Null), &[400]),
        (register, json!({ "email": "a@example.com", "password": "correct horse 1", "firstName": "A" }), &[400]),
        (register, user(ok(&mega_email), ok("correct horse 1"), ok("A"), ok("B")), &[400]),
        (register, user(ok("a@example.com"), ok(&format!("1{mega}")), ok("A"), ok("B")), &[400]),
        (register, user(ok("a@example.com"), ok("correct horse 1"), ok(&mega), ok("B")), &[400]),
        (register, user(ok("a@example.com"), ok("correct horse 1"), ok("A"), ok("B\u{0}")), &[400]),
        (login, json!({ "email": true, "password": "whatever 1" }), &[400]),
        (login, json!({ "password": "whatever 1" }), &[400]),
        (login, json!({ "email": mega_email, "password": "whatever 1" }), &[400]),
        (login, json!({ "email": "a@example.com", "password": mega }), &[400]),
        (refresh, json!({ "refreshToken": 5 }), &[400]),
        (refresh, json!({ "refreshToken": null }), &[400]),
        (refresh, json!({}), &[400]),
        // A well-formed body with a useless token is an authentication failure.
        (refresh, json!({ "refreshToken": mega }), &[401]),
        (logout, json!({ "token": 5 }), &[400]),
        (logout, json!({ "token": ["a", "b"] }), &[400]),
        (logout, json!({ "token": mega }), &[401]),
        (profile, json!({ "firstName": 5 }), &[400]),
        (profile, json!({ "status": "sleeping" }), &[400]),
        (profile, json!({ "status": { "away": true } }), &[400]),
        (profile, json!({ "firstName": mega }), &[400]),
        (profile, json!({ "avatar": mega }), &[413]),
        (profile, json!({ "avatar": false }), &[400]),
        (contacts, json!({ "contactId": "nope" }), &[400]),
        (contacts, json!({ "contactId": null }), &[400]),
        (contacts, json!({ "contactId": { "id": "x" } }), &[400]),
        (contacts, json!({ "contactId": mega }), &[400]),
    ];
    for (endpoint, body, statuses) in cases {
        let what = format!("{} {} with {:.80}", endpoint.method, endpoint.path, body.to_string());
        let response = app.request(endpoint.method.clone(), endpoint.path, endpoint.token.as_deref(), Some(body)).await;
        assert_refused(&response, statuses, &what);
    }
    assert_still_answering(&app).await;
}

#[tokio::test]
async fn malformed_path_ids_get_400() {
    let app = spawn_app().await;
    let user = app.new_user("Paths").await;
    for id in ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g", "%FF%FE", "%00"] {
        let presence = app.get(&format!("/api/v1/users/{id}/presence"), &user.token).await;
        assert_refused(&presence, &[400], &format!("presence of {id}"));
        let removal = app.delete(&format!("/api/v1/users/contacts/{id}"), &user.token).await;
        assert_refused(&removal, &[400], &format!("removal of {id}"));
    }
    assert_still_answering(&app).await;
}

#[tokio::test]
async fn query_parameters_with_control_characters_absurd_numbers_or_nothing_get_400() {
    let app = spawn_app().await;
    let admin = app.new_user("Auditor").await;
    crate::audit::grant(&app, &admin, rapat_domain::account::Role::Admin).await;
    let room = app.create_room(&admin, json!({ "name": "Queries", "maxUsers": 5 })).await;

    let mut queries: Vec<String> = Vec::new();
    for name in ["aggregateType", "actor", "eventType", "aggregateId", "cursor", "from", "to"] {
        for value in ["%00", "a%00b", "%1B", ""] {
            queries.push(format!("/api/v1/audit/events?{name}={value}"));
        }
    }
    queries.extend(
        [
            "/api/v1/audit/events?limit=2147483648",
            "/api/v1/audit/events?limit=0",
            "/api/v1/audit/events?from=2025-01-31",
            "/api/v1/rooms/history?page=2147483648",
            "/api/v1/rooms/history?page=1000001",
            "/api/v1/rooms/history?page=0",
            "/api/v1/rooms/history?limit=-1",
            "/api/v1/rooms/history?page=%00",
            "/api/v1/analytics/daily?from=",
            "/api/v1/analytics/daily?from=2025-1-5",
            "/api/v1/analytics/daily?to=%2B12025-01-05",
            "/api/v1/analytics/daily?from=%00",
            "/api/v1/rooms/history?%00=1",
        ]
        .map(str::to_owned),
    );
    queries.push(format!("/api/v1/rooms/{room}/events?page=2147483648"));
    queries.push(format!("/api/v1/rooms/{room}/chat?before=9223372036854775808"));
    queries.push(format!("/api/v1/rooms/{room}/chat?before=%00"));
    queries.push(format!("/api/v1/rooms/{room}/chat?limit="));
    for query in &queries {
        let answer = app.get(query, &admin.token).await;
        assert_refused(&answer, &[400], query);
    }

    // The same parameters, well formed, still work.
    for query in [
        "/api/v1/audit/events?aggregateType=room&eventType=RoomCreated&limit=5".to_owned(),
        format!("/api/v1/audit/events?aggregateId={room}&actor={}&from=2025-01-31T09:00:00Z", admin.id),
        "/api/v1/rooms/history?page=1000000&limit=100".to_owned(),
        "/api/v1/analytics/daily?from=2025-01-05&to=2025-01-31".to_owned(),
        format!("/api/v1/rooms/{room}/chat?before=9223372036854775807"),
    ] {
        app.get(&query, &admin.token).await.expect(200);
    }
    assert_still_answering(&app).await;
}

#[tokio::test]
async fn odd_authorization_and_content_type_headers_are_refused_not_failed() {
    let app = spawn_app().await;
    let user = app.new_user("Headers").await;
    let url = format!("{}/api/v1/users/profile", app.base_url);
    let authorizations: Vec<reqwest::header::HeaderValue> = vec![
        reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").expect("obs-text is a valid header value"),
        reqwest::header::HeaderValue::from_static("Bearer "),
        reqwest::header::HeaderValue::from_static("Bearer"),
        reqwest::header::HeaderValue::from_static(""),
        reqwest::header::HeaderValue::from_static("Basic YTpi"),
        reqwest::header::HeaderValue::from_str(&format!("Bearer {}", "x".repeat(64 * 1024))).expect("long"),
    ];
    for authorization in authorizations {
        let answer = app
            .http
            .get(&url)
            .header(reqwest::header::AUTHORIZATION, authorization.clone())
            .send()
            .await
            .expect("sent");
        let status = answer.status().as_u16();
        assert!(status == 401 || status == 431, "Authorization {authorization:?} answered {status}");
    }
    for content_type in ["application/json; charset=\u{7f}", "", "application/json\t;", "*/*"] {
        let Ok(value) = reqwest::header::HeaderValue::from_str(content_type) else { continue };
        let answer = app
            .http
            .put(&url)
            .bearer_auth(&user.token)
            .header(reqwest::header::CONTENT_TYPE, value)
            .body(r#"{"firstName":"Ana"}"#)
            .send()
            .await
            .expect("sent");
        let status = answer.status().as_u16();
        assert!(status == 200 || status == 400, "Content-Type {content_type:?} answered {status}");
    }
    assert_still_answering(&app).await;
}
