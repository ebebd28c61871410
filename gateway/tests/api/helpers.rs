//! `spawn_app()`: a whole rapat (write side, projector, gateway) on a random port,
//! with its own database and stream, torn down when the `TestApp` drops.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use rapat_commands::EventStoreConfig;
use rapat_gateway::{Application, Backends, GatewayConfig, Shutdown};
use rapat_projections::{Projection, ProjectionPositions, ProjectorConfig};
use rapat_testkit::{NamespaceCleanup, TestDatabase};
use rapat_wire::Namespace;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use rapat_testkit::{nats_url, postgres_base_url};

pub const TEST_JWT_SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

pub struct TestApp {
    pub address: SocketAddr,
    pub base_url: String,
    pub http: reqwest::Client,
    pub db: sqlx::PgPool,
    pub database: String,
    pub event_store: EventStoreConfig,
    /// Every NATS name of this app's.
    pub namespace: Namespace,
    /// The NATS this app (and `second_gateway`) connects to.
    pub nats_url: String,
    shutdown: CancellationToken,
    // Dropped after `Drop::drop` has stopped the app: they remove its database,
    // streams and buckets.
    _database: TestDatabase,
    _nats_names: NamespaceCleanup,
}

/// One HTTP answer: status, parsed JSON body (Null when not JSON) and headers.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl TestResponse {
    /// `body.error.code`, for error answers.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "unexpected answer: {:#}", self.body);
        self
    }

    /// Asserts an error answer in the SPEC's envelope with this status and code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        self.expect(status);
        assert_eq!(self.body["success"], json!(false), "{:#}", self.body);
        assert_eq!(self.error_code(), code, "{:#}", self.body);
        assert!(self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{:#}", self.body);
    }
}

/// A registered, logged-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub token: String,
    pub refresh_token: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like `spawn_app`, letting the test change the gateway's settings first.
pub async fn spawn_app_with(configure: impl FnOnce(&mut GatewayConfig)) -> TestApp {
    spawn_app_on(&nats_url(), &postgres_base_url(), configure).await
}

/// Like `spawn_app_with`, on a NATS and a Postgres of the test's choosing (a
/// private nats-server to kill, a proxy to cut).
pub async fn spawn_app_on(
    nats_url: &str,
    postgres_base_url: &str,
    configure: impl FnOnce(&mut GatewayConfig),
) -> TestApp {
    spawn_app_replicated(nats_url, postgres_base_url, 1, configure).await
}

/// Like `spawn_app_on`, with the event stream and buckets on `replicas` nodes
/// (`nats_url` lists a cluster's nodes).
pub async fn spawn_app_replicated(
    nats_url: &str,
    postgres_base_url: &str,
    replicas: usize,
    configure: impl FnOnce(&mut GatewayConfig),
) -> TestApp {
    init_tracing();
    let namespace = rapat_testkit::unique_namespace();
    let nats_names = NamespaceCleanup::on(nats_url, namespace.clone());
    let test_database = TestDatabase::on(postgres_base_url, &namespace);
    let mut event_store = EventStoreConfig::for_namespace(namespace.clone());
    event_store.max_age = Some(Duration::from_secs(3600));
    event_store.replicas = replicas;

    let nats = rapat_commands::connect(nats_url).await.expect("NATS with JetStream must be running");
    let jetstream = async_nats::jetstream::new(nats.clone());
    // A cluster that has just started may not know all its peers yet ("no
    // suitable peers for placement"): a replicated stream is asked for again.
    let placement_deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match rapat_commands::ensure_event_store(&jetstream, &event_store).await {
            Ok(_) => break,
            Err(_) if replicas > 1 && std::time::Instant::now() < placement_deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => panic!("event stream: {error:?}"),
        }
    }

    let database = test_database.name.clone();
    let db = rapat_projections::connect(&test_database.url()).await.expect("Postgres must be running");
    let positions = ProjectionPositions::start(db.clone());
    let shutdown = CancellationToken::new();
    let projector_config = ProjectorConfig::for_namespace(namespace.clone());
    tokio::spawn(rapat_projections::run_all(db.clone(), jetstream.clone(), projector_config, shutdown.child_token()));

    let mut config = GatewayConfig::new("127.0.0.1:0".parse().expect("address"), TEST_JWT_SECRET.to_vec());
    // Generous by default so ordinary tests never meet it; rate-limit tests lower it.
    config.auth_rate_limit.burst = 1000;
    configure(&mut config);
    let metrics = Some(metrics_handle());
    let stop = Shutdown::new(shutdown.child_token());
    let backends =
        Backends { nats, event_store: event_store.clone(), db: db.clone(), positions, metrics, shutdown: stop };
    let application = Application::build(config, backends).await.expect("gateway starts");
    let address = application.address();
    tokio::spawn(application.run_until_stopped());

    TestApp {
        address,
        base_url: format!("http://{address}"),
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        db,
        database,
        event_store,
        namespace,
        nats_url: nats_url.to_string(),
        shutdown,
        _database: test_database,
        _nats_names: nats_names,
    }
}

impl TestApp {
    /// Waits until the audit trail has applied what every other read model has.
    /// Writes wait for their own read model only and the API's audit queries wait
    /// like this (`write.rs`), so a test reading `audit_events` itself must too.
    pub async fn audit_caught_up(&self) {
        let furthest: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(last_sequence), 0) FROM projection_checkpoints \
             WHERE projection <> 'audit' AND stream_mismatch IS NULL",
        )
        .fetch_one(&self.db)
        .await
        .expect("checkpoints");
        let positions = ProjectionPositions::start(self.db.clone());
        positions
            .wait_for(&[Projection::Audit], u64::try_from(furthest).unwrap_or(0), Duration::from_secs(10))
            .await
            .expect("the audit trail caught up");
    }

    /// Starts another gateway on the same stream and database, as a second
    /// process would, and returns its base URL.
    pub async fn second_gateway(&self) -> String {
        self.second_gateway_on(&self.nats_url).await
    }

    /// Like `second_gateway`, reaching NATS at `nats_url` (e.g. through a proxy to cut).
    pub async fn second_gateway_on(&self, nats_url: &str) -> String {
        let nats = rapat_commands::connect(nats_url).await.expect("NATS");
        let positions = ProjectionPositions::start(self.db.clone());
        let mut config = GatewayConfig::new("127.0.0.1:0".parse().expect("address"), TEST_JWT_SECRET.to_vec());
        config.auth_rate_limit.burst = 1000;
        let backends = Backends {
            nats,
            event_store: self.event_store.clone(),
            db: self.db.clone(),
            positions,
            metrics: Some(metrics_handle()),
            shutdown: Shutdown::new(self.shutdown.child_token()),
        };
        let application = Application::build(config, backends).await.expect("second gateway starts");
        let address = application.address();
        tokio::spawn(application.run_until_stopped());
        format!("http://{address}")
    }

    /// Sends a request; `body` is sent as JSON when given.
    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> TestResponse {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_test_response(request.send().await.expect("request sent")).await
    }

    /// Sends a request with an `Idempotency-Key` and an `X-Request-Id` (which
    /// becomes the correlation id of the events it stores, so the stream tells
    /// which request stored what).
    pub async fn keyed(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
        key: &str,
        request_id: &str,
    ) -> TestResponse {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header("idempotency-key", key)
            .header("x-request-id", request_id)
            .timeout(Duration::from_secs(20))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_test_response(request.send().await.expect("request sent")).await
    }

    /// Sends raw bytes with a given content type (for garbage-body tests).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> TestResponse {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        into_test_response(request.send().await.expect("request sent")).await
    }

    /// The OpenAPI document the server serves (no token needed).
    pub async fn openapi_document(&self) -> Value {
        let url = format!("{}/api/v1/openapi.json", self.base_url);
        let response = self.http.get(url).send().await.expect("request sent");
        assert_eq!(response.status().as_u16(), 200);
        response.json().await.expect("the document is JSON")
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.request(Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.request(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn register(&self, email: &str, password: &str, first_name: &str, last_name: &str) -> TestResponse {
        let body = json!({ "email": email, "password": password, "firstName": first_name, "lastName": last_name });
        self.post("/api/v1/auth/register", None, body).await
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.post("/api/v1/auth/login", None, json!({ "email": email, "password": password })).await
    }

    /// Registers a fresh user (unique email) and logs them in.
    pub async fn new_user(&self, first_name: &str) -> TestUser {
        let email = format!("{}.{}@example.com", first_name.to_lowercase(), Uuid::new_v4().simple());
        let password = "correct horse 1".to_string();
        let registered = self.register(&email, &password, first_name, "Tester").await;
        registered.expect(201);
        let login = self.login(&email, &password).await;
        login.expect(200);
        TestUser {
            id: registered.data()["user"]["id"].as_str().expect("user id").to_string(),
            email,
            password,
            first_name: first_name.to_string(),
            token: login.data()["token"].as_str().expect("token").to_string(),
            refresh_token: login.data()["refreshToken"].as_str().expect("refresh token").to_string(),
        }
    }

    /// Creates a room as `host` and returns its id.
    pub async fn create_room(&self, host: &TestUser, body: Value) -> String {
        let created = self.post("/api/v1/rooms", Some(&host.token), body).await;
        created.expect(201);
        created.data()["id"].as_str().expect("room id").to_string()
    }
}

async fn into_test_response(response: reqwest::Response) -> TestResponse {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    TestResponse { status, body, headers }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One Prometheus recorder for the whole test binary (a recorder is global).
fn metrics_handle() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().expect("the only recorder")
        })
        .clone()
}

fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Silent unless TEST_LOG is set, as in zero-to-production.
        if std::env::var("TEST_LOG").is_ok() {
            let _ = tracing_subscriber::fmt().with_env_filter("info,rapat=debug").with_test_writer().try_init();
        }
    });
}
