//! `/auth`: registration, login, logout, refresh, and what every protected
//! endpoint does with missing, bad, expired and revoked tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rapat_gateway::RateLimit;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TEST_JWT_SECRET as TEST_SECRET, TestApp, TestResponse, spawn_app, spawn_app_with};

impl TestApp {
    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.post("/api/v1/auth/refresh", None, json!({ "refreshToken": refresh_token })).await
    }

    /// Logs out with the token as `Authorization: Bearer`.
    pub async fn logout(&self, token: &str) -> TestResponse {
        self.request(Method::POST, "/api/v1/auth/logout", Some(token), None).await
    }
}

/// The claims of a JWT, read without checking it.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

/// A copy of `token` that expired an hour ago, signed with `secret`.
fn expired_copy(token: &str, secret: &[u8]) -> String {
    let mut claims = claims_of(token);
    let hour_ago = chrono::Utc::now().timestamp() - 3600;
    claims["iat"] = json!(hour_ago - 900);
    claims["exp"] = json!(hour_ago);
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).expect("signed")
}

#[tokio::test]
async fn register_answers_201_with_the_user_and_never_a_password() {
    let app = spawn_app().await;

    let response = app.register("  Siti.Nurhaliza@Example.COM ", "correct horse 1", " Siti ", "Nurhaliza").await;

    response.expect(201);
    assert_eq!(response.body["success"], json!(true));
    let user = &response.data()["user"];
    assert!(Uuid::parse_str(user["id"].as_str().unwrap_or("")).is_ok(), "{user:#}");
    assert_eq!(user["email"], "siti.nurhaliza@example.com", "emails are normalised");
    assert_eq!((user["firstName"].as_str(), user["lastName"].as_str()), (Some("Siti"), Some("Nurhaliza")));
    assert_eq!(user["avatar"], Value::Null);
    assert_eq!((user["status"].as_str(), user["role"].as_str()), (Some("active"), Some("member")));
    for timestamp in ["createdAt", "updatedAt"] {
        assert!(chrono::DateTime::parse_from_rfc3339(user[timestamp].as_str().unwrap_or("")).is_ok(), "{user:#}");
    }
    let text = response.body.to_string().to_lowercase();
    assert!(!text.contains("password") && !text.contains("argon2"), "no password or hash on the wire: {text}");
}

#[tokio::test]
async fn register_refuses_bad_input_with_400() {
    let app = spawn_app().await;
    let cases = [
        ("not-an-email", "correct horse 1", "Ana", "B", "invalid_input"),
        ("ana@localhost", "correct horse 1", "Ana", "B", "invalid_input"),
        ("", "correct horse 1", "Ana", "B", "invalid_input"),
        ("ana\u{0}x@example.com", "correct horse 1", "Ana", "B", "invalid_input"),
        ("ana@example.com", "short1", "Ana", "B", "invalid_password"),
        ("ana@example.com", "onlyletters", "Ana", "B", "invalid_password"),
        ("ana@example.com", "12345678", "Ana", "B", "invalid_password"),
        ("ana@example.com", "correct horse 1", "  ", "B", "invalid_input"),
        ("ana@example.com", "correct horse 1", "Ana", "", "invalid_input"),
        ("ana@example.com", "correct horse 1", "Ana\u{7}", "B", "invalid_input"),
    ];
    for (email, password, first, last, code) in cases {
        let response = app.register(email, password, first, last).await;
        assert_eq!(response.status, 400, "{email:?} {password:?} {first:?} {last:?}: {:#}", response.body);
        response.expect_error(400, code);
    }
    let long_name = "x".repeat(101);
    app.register("ana@example.com", "correct horse 1", &long_name, "B").await.expect_error(400, "invalid_input");
    // None of those created the account.
    app.register("ana@example.com", "correct horse 1", "Ana", "B").await.expect(201);
}

#[tokio::test]
async fn registering_an_email_twice_is_a_409_whatever_its_case() {
    let app = spawn_app().await;
    app.register("budi@example.com", "correct horse 1", "Budi", "Santoso").await.expect(201);

    app.register("budi@example.com", "another horse 2", "Budi", "Lain").await.expect_error(409, "email_taken");
    app.register(" BUDI@Example.com", "another horse 2", "Budi", "Lain").await.expect_error(409, "email_taken");

    // The first password is still the one that works.
    app.login("budi@example.com", "correct horse 1").await.expect(200);
    app.login("budi@example.com", "another horse 2").await.expect_error(401, "invalid_credentials");
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_exactly_one_account() {
    let app = spawn_app().await;
    let attempt = |first_name: &'static str| app.register("race@example.com", "correct horse 1", first_name, "Tester");

    let (a, b, c, d, e) =
        tokio::join!(attempt("Ayu"), attempt("Bima"), attempt("Cici"), attempt("Dani"), attempt("Edo"));

    let responses = [a, b, c, d, e];
    let created: Vec<&TestResponse> = responses.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "{responses:#?}");
    for response in responses.iter().filter(|r| r.status != 201) {
        response.expect_error(409, "email_taken");
    }
    let login = app.login("race@example.com", "correct horse 1").await;
    login.expect(200);
    assert_eq!(login.data()["user"]["id"], created[0].data()["user"]["id"]);
}

#[tokio::test]
async fn login_answers_the_user_and_working_tokens() {
    let app = spawn_app().await;
    let registered = app.register("citra@example.com", "correct horse 1", "Citra", "Dewi").await;
    registered.expect(201);

    let login = app.login(" Citra@Example.com", "correct horse 1").await;

    login.expect(200);
    let data = login.data();
    assert_eq!(data["user"]["id"], registered.data()["user"]["id"]);
    assert_eq!(data["user"]["email"], "citra@example.com");
    assert_eq!(data["expiresIn"], json!(900));
    assert!(!login.body.to_string().contains("argon2"), "{:#}", login.body);
    let token = data["token"].as_str().expect("token");
    let claims = claims_of(token);
    assert_eq!(claims["sub"], data["user"]["id"]);
    assert_eq!(claims["role"], "member");
    assert!(data["refreshToken"].as_str().is_some_and(|t| t.starts_with(claims["sid"].as_str().unwrap_or("?"))));
    let profile = app.get("/api/v1/users/profile", token).await;
    profile.expect(200);
    assert_eq!(profile.data()["email"], "citra@example.com");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_401() {
    let app = spawn_app().await;
    app.register("dewi@example.com", "correct horse 1", "Dewi", "Lestari").await.expect(201);

    let wrong_password = app.login("dewi@example.com", "wrong horse 1").await;
    let unknown_email = app.login("nobody@example.com", "correct horse 1").await;

    wrong_password.expect_error(401, "invalid_credentials");
    unknown_email.expect_error(401, "invalid_credentials");
    assert_eq!(wrong_password.body, unknown_email.body);
}

#[tokio::test]
async fn login_refuses_malformed_input_with_400() {
    let app = spawn_app().await;
    app.login("not-an-email", "whatever 1").await.expect_error(400, "invalid_input");
    app.login("eko@example.com", "").await.expect_error(400, "invalid_password");
    app.login("eko@example.com", &"x".repeat(2000)).await.expect_error(400, "invalid_password");
    app.post("/api/v1/auth/login", None, json!({ "email": "eko@example.com" })).await.expect_error(400, "invalid_body");
}

#[tokio::test]
async fn protected_endpoints_refuse_missing_garbage_forged_and_expired_tokens() {
    let app = spawn_app().await;
    let user = app.new_user("Fajar").await;
    let expired = expired_copy(&user.token, TEST_SECRET);
    // Valid claims signed with another key, and the same claims unsigned.
    let mut forged_claims = claims_of(&user.token);
    forged_claims["role"] = json!("admin");
    let other_key = jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-another!");
    let forged = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &forged_claims, &other_key).expect("signed");
    let payload = user.token.split('.').nth(1).expect("three parts");
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");

    for path in ["/api/v1/users/profile", "/api/v1/users/contacts", &format!("/api/v1/users/{}/presence", user.id)] {
        app.request(Method::GET, path, None, None).await.expect_error(401, "missing_token");
        app.get(path, "garbage").await.expect_error(401, "invalid_token");
        app.get(path, &unsigned).await.expect_error(401, "invalid_token");
        app.get(path, &forged).await.expect_error(401, "invalid_token");
        app.get(path, &expired).await.expect_error(401, "token_expired");
        app.get(path, &user.token).await.expect(200);
    }
    // A scheme other than Bearer is no token at all.
    let basic = app
        .http
        .get(format!("{}/api/v1/users/profile", app.base_url))
        .header("Authorization", format!("Basic {}", user.token))
        .send()
        .await
        .expect("sent");
    assert_eq!(basic.status(), 401);
}

#[tokio::test]
async fn the_access_ttl_setting_sets_the_token_lifetime() {
    let app = spawn_app_with(|config| config.access_ttl = std::time::Duration::from_secs(1)).await;
    let user = app.new_user("Gita").await;
    let claims = claims_of(&user.token);
    assert_eq!(claims["exp"].as_i64().unwrap_or(0) - claims["iat"].as_i64().unwrap_or(0), 1);
    let login = app.login(&user.email, &user.password).await;
    assert_eq!(login.data()["expiresIn"], json!(1));
}

#[tokio::test]
async fn logout_revokes_the_session_access_and_refresh_tokens_at_once() {
    let app = spawn_app().await;
    let user = app.new_user("Hadi").await;
    let other_device = app.login(&user.email, &user.password).await;
    let other_token = other_device.data()["token"].as_str().expect("token").to_string();
    app.get("/api/v1/users/profile", &user.token).await.expect(200);

    let logout = app.logout(&user.token).await;

    logout.expect(200);
    assert_eq!(logout.body, json!({ "success": true, "message": "Logged out successfully" }));
    for path in ["/api/v1/users/profile", "/api/v1/users/contacts"] {
        app.get(path, &user.token).await.expect_error(401, "token_revoked");
    }
    app.refresh(&user.refresh_token).await.expect_error(401, "session_revoked");
    // Only that session ended: the other login still works.
    app.get("/api/v1/users/profile", &other_token).await.expect(200);
    // Logging out again changes nothing and still succeeds.
    app.logout(&user.token).await.expect(200);
}

#[tokio::test]
async fn logout_takes_the_token_from_the_body_even_when_expired() {
    let app = spawn_app().await;
    let user = app.new_user("Indah").await;
    let expired = expired_copy(&user.token, TEST_SECRET);

    app.post("/api/v1/auth/logout", None, json!({ "token": expired })).await.expect(200);

    app.get("/api/v1/users/profile", &user.token).await.expect_error(401, "token_revoked");
    app.refresh(&user.refresh_token).await.expect_error(401, "session_revoked");
}

#[tokio::test]
async fn logout_refuses_missing_and_unsigned_tokens() {
    let app = spawn_app().await;
    let user = app.new_user("Joko").await;
    app.request(Method::POST, "/api/v1/auth/logout", None, None).await.expect_error(401, "missing_token");
    app.post("/api/v1/auth/logout", None, json!({})).await.expect_error(401, "missing_token");
    app.post("/api/v1/auth/logout", None, json!({ "token": "garbage" })).await.expect_error(401, "invalid_token");
    let forged = expired_copy(&user.token, b"another-secret-another-secret-another!");
    app.post("/api/v1/auth/logout", None, json!({ "token": forged })).await.expect_error(401, "invalid_token");
    app.post("/api/v1/auth/logout", None, json!({ "token": 42 })).await.expect_error(400, "invalid_body");
    // None of those ended the session.
    app.get("/api/v1/users/profile", &user.token).await.expect(200);
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let app = spawn_app().await;
    let user = app.new_user("Kartika").await;

    let first = app.refresh(&user.refresh_token).await;

    first.expect(200);
    let token = first.data()["token"].as_str().expect("token");
    let refresh_token = first.data()["refreshToken"].as_str().expect("refresh token");
    assert_ne!(refresh_token, user.refresh_token);
    assert_eq!(first.data()["expiresIn"], json!(900));
    assert_eq!(claims_of(token)["sid"], claims_of(&user.token)["sid"], "the same session goes on");
    assert_eq!(claims_of(token)["role"], "member");
    app.get("/api/v1/users/profile", token).await.expect(200);
    // `token` is accepted as an alias of `refreshToken`.
    let second = app.post("/api/v1/auth/refresh", None, json!({ "token": refresh_token })).await;
    second.expect(200);
    assert_ne!(second.data()["refreshToken"].as_str(), Some(refresh_token));
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let user = app.new_user("Lukman").await;
    let rotated = app.refresh(&user.refresh_token).await;
    rotated.expect(200);
    let latest_access = rotated.data()["token"].as_str().expect("token").to_string();
    let latest_refresh = rotated.data()["refreshToken"].as_str().expect("refresh token").to_string();

    // The first refresh token is spent: presenting it again means it leaked.
    app.refresh(&user.refresh_token).await.expect_error(401, "refresh_token_reused");

    app.refresh(&latest_refresh).await.expect_error(401, "session_revoked");
    app.get("/api/v1/users/profile", &latest_access).await.expect_error(401, "token_revoked");
    app.get("/api/v1/users/profile", &user.token).await.expect_error(401, "token_revoked");
    // The user can still log in again.
    let again = app.login(&user.email, &user.password).await;
    again.expect(200);
    app.get("/api/v1/users/profile", again.data()["token"].as_str().expect("token")).await.expect(200);
}

#[tokio::test]
async fn refresh_refuses_malformed_and_unknown_tokens() {
    let app = spawn_app().await;
    let user = app.new_user("Maya").await;
    let session = claims_of(&user.token)["sid"].as_str().expect("sid").to_string();
    let cases = [
        "garbage".to_string(),
        String::new(),
        format!("{session}.{}", "zz".repeat(32)),
        format!("{}.{}", Uuid::new_v4(), "ab".repeat(32)),
        format!("{session}.{}", "ab".repeat(32)),
        user.token.clone(),
    ];
    for token in cases {
        app.refresh(&token).await.expect_error(401, "invalid_refresh_token");
    }
    // A wrong guess is not reuse: the session survives it.
    app.refresh(&user.refresh_token).await.expect(200);
    app.post("/api/v1/auth/refresh", None, json!({})).await.expect_error(400, "invalid_body");
}

#[tokio::test]
async fn auth_endpoints_are_rate_limited_per_client() {
    let limit = RateLimit { burst: 2, replenish_every: std::time::Duration::from_secs(60) };
    let app = spawn_app_with(|config| config.auth_rate_limit = limit).await;

    app.login("nobody@example.com", "whatever 1").await.expect_error(401, "invalid_credentials");
    app.login("nobody@example.com", "whatever 1").await.expect_error(401, "invalid_credentials");
    let limited = app.login("nobody@example.com", "whatever 1").await;

    limited.expect_error(429, "rate_limited");
    let retry_after: u64 = limited
        .headers
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    app.register("new@example.com", "correct horse 1", "New", "User").await.expect_error(429, "rate_limited");
    // Endpoints outside /auth are not limited.
    let health = app.http.get(format!("{}/healthz", app.base_url)).send().await.expect("sent");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn auth_and_user_operations_are_documented_with_their_security() {
    let app = spawn_app().await;
    let document = app.openapi_document().await;
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in
        paths.iter().filter(|(path, _)| path.starts_with("/api/v1/auth") || path.starts_with("/api/v1/users"))
    {
        for (method, operation) in item.as_object().expect("a path item") {
            let what = format!("{method} {path}");
            let tag = if path.starts_with("/api/v1/auth") { "auth" } else { "users" };
            assert_eq!(operation["tags"], json!([tag]), "{what}");
            let success = ["200", "201", "202"].iter().find_map(|status| operation["responses"].get(*status));
            assert!(success.is_some_and(|response| response["content"]["application/json"].is_object()), "{what}");
            if tag == "users" {
                assert_eq!(operation["security"], json!([{ "bearer": [] }]), "{what}");
                assert!(operation["responses"]["401"].is_object(), "{what} documents its 401");
            } else {
                assert!(operation["requestBody"].is_object(), "{what} documents its body");
                assert!(operation["responses"]["429"].is_object(), "{what} documents its rate limit");
            }
        }
    }
    let login = &paths["/api/v1/auth/login"]["post"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(login["$ref"], "#/components/schemas/Data_LoginData");
    let data = &document["components"]["schemas"]["Data_LoginData"]["properties"]["data"];
    assert_eq!(data["required"], json!(["user", "token", "refreshToken", "expiresIn"]), "{data:#}");
    let fields = document["components"]["schemas"]["UserView"]["properties"].as_object().expect("properties");
    assert!(fields.keys().all(|field| !field.to_lowercase().contains("password")), "{fields:?}");
}

/// Gateways remember active sessions briefly; a logout through one gateway must
/// still stop the token at another at once, not when that memory expires.
#[tokio::test]
async fn a_logout_through_one_gateway_stops_the_token_at_another() {
    let app = spawn_app().await;
    let other = app.second_gateway().await;
    let user = app.new_user("Sari").await;
    let profile_at_other = || app.http.get(format!("{other}/api/v1/users/profile")).bearer_auth(&user.token).send();
    assert_eq!(profile_at_other().await.expect("answers").status(), 200, "the other gateway now remembers the session");

    app.post("/api/v1/auth/logout", Some(&user.token), json!({})).await.expect(200);
    // Well inside the 10 s the other gateway would otherwise trust its memory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let status = profile_at_other().await.expect("answers").status();
        if status == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the other gateway still accepts a logged-out token");
        tokio::task::yield_now().await;
    }
}

/// A copy of `token`, signed with the test secret, that names `user` as its
/// subject but keeps its own session: what a leaked signing key or a token mix-up
/// would make.
pub fn token_with_subject(token: &str, user: &str) -> String {
    let mut claims = claims_of(token);
    claims["sub"] = json!(user);
    let key = jsonwebtoken::EncodingKey::from_secret(TEST_SECRET);
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), &claims, &key).expect("signed")
}

#[tokio::test]
async fn a_token_whose_subject_is_not_its_sessions_user_is_refused() {
    let app = spawn_app().await;
    let victim = app.new_user("Vina").await;
    let mallory = app.new_user("Mallory").await;
    // Mallory's session is active and remembered by the gateway's session cache.
    app.get("/api/v1/users/profile", &mallory.token).await.expect(200);

    let mixed = token_with_subject(&mallory.token, &victim.id);
    app.get("/api/v1/users/profile", &mixed).await.expect_error(401, "invalid_token");
    app.get("/api/v1/users/contacts", &mixed).await.expect_error(401, "invalid_token");
    // Nor can such a token end the session it names.
    app.post("/api/v1/auth/logout", Some(&mixed), json!({})).await.expect_error(401, "invalid_token");
    // The genuine tokens still work.
    app.get("/api/v1/users/profile", &mallory.token).await.expect(200);
    assert_eq!(app.get("/api/v1/users/profile", &victim.token).await.data()["id"], json!(victim.id));
}
