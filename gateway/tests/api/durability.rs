//! Answers that tell the truth and safe retries (`Idempotency-Key`), within one
//! request deadline, with NATS killed (a private nats-server) and Postgres cut
//! (a proxy in front of it for this app only).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rapat_domain::envelope::StoredCommit;
use rapat_testkit::{NatsServer, TcpProxy, eventually, eventually_async};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, postgres_base_url, spawn_app, spawn_app_on};

/// What the deadline promises (3 s) plus room for a busy machine.
const ANSWER_WITHIN: Duration = Duration::from_millis(3500);

/// Every commit of the app's stream, by stream sequence.
async fn stream_commits(nats_url: &str, app: &TestApp) -> Vec<StoredCommit> {
    let client = rapat_commands::connect(nats_url).await.expect("NATS");
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream.get_stream(app.namespace.events_stream()).await.expect("the stream");
    let last = stream.info().await.expect("stream info").state.last_sequence;
    let mut commits = Vec::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.expect("a stored message");
        commits.push(serde_json::from_slice(&message.payload).expect("a commit"));
    }
    commits
}

/// How many commits each correlation id stored.
fn stored_by_request(commits: &[StoredCommit]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for commit in commits {
        if let Some(id) = commit.events.first().and_then(|event| event.correlation_id.clone()) {
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

fn room_body(name: &str) -> Value {
    json!({ "name": name, "maxUsers": 10 })
}

#[tokio::test]
async fn a_retried_keyed_write_is_stored_once_and_answered_alike() {
    let app = spawn_app().await;
    let alice = app.new_user("Alice").await;
    let bob = app.new_user("Bob").await;

    let first =
        app.keyed(Method::POST, "/api/v1/rooms", Some(&alice.token), room_body("Standup"), "key-1", "req-a1").await;
    first.expect(201);
    let again =
        app.keyed(Method::POST, "/api/v1/rooms", Some(&alice.token), room_body("Standup"), "key-1", "req-a2").await;
    again.expect(201);
    assert_eq!(first.data(), again.data(), "a retry answers as the first attempt did");
    let room = first.data()["id"].as_str().expect("room id").to_string();

    // The same key from another user is another request.
    let bobs =
        app.keyed(Method::POST, "/api/v1/rooms", Some(&bob.token), room_body("Standup"), "key-1", "req-b1").await;
    bobs.expect(201);
    assert_ne!(bobs.data()["id"], first.data()["id"]);

    // A change retried after it was stored: the second is deduplicated.
    let path = format!("/api/v1/rooms/{room}");
    let update = app.keyed(Method::PUT, &path, Some(&alice.token), json!({ "maxUsers": 5 }), "key-2", "req-a3").await;
    update.expect(200);
    let update_again =
        app.keyed(Method::PUT, &path, Some(&alice.token), json!({ "maxUsers": 5 }), "key-2", "req-a4").await;
    update_again.expect(200);
    assert_eq!(update.data(), update_again.data());

    // Joining twice with one key: the second is the first's answer, not a new event.
    let join = format!("/api/v1/rooms/{room}/join");
    app.keyed(Method::POST, &join, Some(&bob.token), json!({}), "key-3", "req-b2").await.expect(200);
    app.keyed(Method::POST, &join, Some(&bob.token), json!({}), "key-3", "req-b3").await.expect(200);

    // A registration retried: one account, the same answer.
    let register = json!({ "email": "carol@example.com", "password": "correct horse 1", "firstName": "Carol", "lastName": "Tester" });
    let registered = app.keyed(Method::POST, "/api/v1/auth/register", None, register.clone(), "key-4", "req-c1").await;
    registered.expect(201);
    let registered_again = app.keyed(Method::POST, "/api/v1/auth/register", None, register, "key-4", "req-c2").await;
    registered_again.expect(201);
    assert_eq!(registered.data(), registered_again.data());

    // A login retried: one session, the same refresh token, which works.
    let login = json!({ "email": "carol@example.com", "password": "correct horse 1" });
    let logged_in = app.keyed(Method::POST, "/api/v1/auth/login", None, login.clone(), "key-5", "req-c3").await;
    logged_in.expect(200);
    let logged_in_again = app.keyed(Method::POST, "/api/v1/auth/login", None, login.clone(), "key-5", "req-c4").await;
    logged_in_again.expect(200);
    let refresh_token = logged_in.data()["refreshToken"].clone();
    assert_eq!(refresh_token, logged_in_again.data()["refreshToken"], "the same session's refresh token");
    let another = app.keyed(Method::POST, "/api/v1/auth/login", None, login.clone(), "key-6", "req-c5").await;
    another.expect(200);
    assert_ne!(refresh_token, another.data()["refreshToken"], "another key is another session");
    let refreshed = app
        .keyed(Method::POST, "/api/v1/auth/refresh", None, json!({ "refreshToken": refresh_token }), "r", "req-c6")
        .await;
    refreshed.expect(200);
    // Its session moved on: the first answer cannot be given again.
    let too_late = app.keyed(Method::POST, "/api/v1/auth/login", None, login, "key-5", "req-c7").await;
    too_late.expect_error(409, "login_already_answered");

    let stored = stored_by_request(&stream_commits(&crate::helpers::nats_url(), &app).await);
    assert_eq!(stored.get("req-c3"), Some(&1), "the login is stored once: {stored:?}");
    assert_eq!(stored.get("req-c4"), None, "its retry stored nothing: {stored:?}");
    for first_attempt in ["req-a1", "req-b1", "req-a3", "req-b2"] {
        assert_eq!(stored.get(first_attempt), Some(&1), "{first_attempt} is stored once: {stored:?}");
    }
    assert_eq!(stored.get("req-c1"), Some(&3), "a registration is a claim, an account and a confirmation: {stored:?}");
    for retry in ["req-a2", "req-a4", "req-b3", "req-c2"] {
        assert_eq!(stored.get(retry), None, "the retry {retry} stored nothing: {stored:?}");
    }
}

#[tokio::test]
async fn the_document_states_the_key_and_the_202() {
    let app = spawn_app().await;
    let document = app.openapi_document().await;
    let has_key = |path: &str, method: &str| {
        document["paths"][path][method]["parameters"]
            .as_array()
            .is_some_and(|parameters| parameters.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"))
    };
    for (path, method) in [
        ("/api/v1/rooms", "post"),
        ("/api/v1/rooms/{roomId}", "put"),
        ("/api/v1/auth/register", "post"),
        ("/api/v1/users/contacts/{contactId}", "delete"),
    ] {
        assert!(has_key(path, method), "{method} {path} documents Idempotency-Key");
        assert!(document["paths"][path][method]["responses"]["202"].is_object(), "{method} {path} documents 202");
    }
    assert!(has_key("/api/v1/auth/login", "post"), "a login is keyed");
    assert!(!has_key("/api/v1/auth/refresh", "post"), "a refresh is not keyed");
    assert!(document["paths"]["/api/v1/auth/login"]["post"]["responses"]["202"].is_object());
    assert!(!has_key("/api/v1/rooms", "get"), "a read is not keyed");
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let alice = app.new_user("Alice").await;
    for key in ["k".repeat(256), "with space".to_string()] {
        app.keyed(Method::POST, "/api/v1/rooms", Some(&alice.token), room_body("R"), &key, "req-x")
            .await
            .expect_error(400, "invalid_idempotency_key");
    }
    let register =
        json!({ "email": "dave@example.com", "password": "correct horse 1", "firstName": "D", "lastName": "T" });
    app.keyed(Method::POST, "/api/v1/auth/register", None, register, &"k".repeat(256), "req-y")
        .await
        .expect_error(400, "invalid_idempotency_key");
}

/// One write of the load, and what it was answered.
#[derive(Clone, Debug)]
struct Attempt {
    /// Index of the user who sent it: a key is bound to its user.
    user: usize,
    method: Method,
    path: String,
    body: Value,
    key: String,
    request_id: String,
    status: u16,
    code: String,
    started: Instant,
    took: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_during_a_nats_outage_answer_fast_and_truthfully() {
    let mut nats = NatsServer::start().await;
    let app =
        Arc::new(spawn_app_on(&nats.url(), &postgres_base_url(), |config| config.rooms_per_user_per_hour = 0).await);
    let mut users = Vec::new();
    for name in ["Ann", "Ben", "Cat", "Dan"] {
        users.push(app.new_user(name).await);
    }

    // Writes from four users, without pause, through the kill.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attempts = Arc::new(Mutex::new(Vec::<Attempt>::new()));
    let mut load = Vec::new();
    for (index, user) in users.clone().into_iter().enumerate() {
        let (app, stop, attempts) = (Arc::clone(&app), Arc::clone(&stop), Arc::clone(&attempts));
        load.push(tokio::spawn(async move {
            // Creations (a new aggregate: loaded from the stream) and changes of
            // the last room created (cached: straight to the publish).
            let mut last_room: Option<String> = None;
            let mut round = 0_u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let (method, path, body) = match &last_room {
                    Some(room) if round.is_multiple_of(2) => {
                        (Method::PUT, format!("/api/v1/rooms/{room}"), json!({ "maxUsers": 2 + round % 7 }))
                    }
                    _ => (Method::POST, "/api/v1/rooms".to_string(), room_body("Load")),
                };
                let (key, request_id) = (Uuid::new_v4().to_string(), Uuid::new_v4().to_string());
                let started = Instant::now();
                let answer = app.keyed(method.clone(), &path, Some(&user.token), body.clone(), &key, &request_id).await;
                let took = started.elapsed();
                let code =
                    answer.body["error"]["code"].as_str().or(answer.body["code"].as_str()).unwrap_or("").to_string();
                if answer.status == 201 {
                    last_room = answer.data()["id"].as_str().map(str::to_string);
                }
                let status = answer.status.as_u16();
                attempts.lock().expect("not poisoned").push(Attempt {
                    user: index,
                    method,
                    path,
                    body,
                    key,
                    request_id,
                    status,
                    code,
                    started,
                    took,
                });
                // A client backs off a little after a failure; it also keeps the
                // number of retries to check below small.
                if !answer.status.is_success() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    // The load is under way (each user has had writes stored) when NATS dies.
    let load_running = || {
        let attempts = attempts.lock().expect("not poisoned");
        (0..users.len()).all(|user| attempts.iter().filter(|a| a.user == user && a.status < 300).count() >= 2)
    };
    eventually("every user's writes to be stored", Duration::from_secs(60), load_running).await;
    nats.kill();
    let killed_at = Instant::now();

    // Once the gateway has noticed, /readyz says so at once.
    let nats_down = async || {
        let ready = app.http.get(format!("{}/readyz", app.base_url)).send().await;
        ready.is_ok_and(|response| response.status() == 503)
    };
    eventually_async("the gateway to notice that NATS is gone", Duration::from_secs(10), nats_down).await;
    let asked = Instant::now();
    let ready = app.http.get(format!("{}/readyz", app.base_url)).send().await.expect("readyz answers");
    let readyz_took = asked.elapsed();
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["nats"], "down", "{body}");
    assert!(readyz_took < Duration::from_secs(1), "/readyz took {readyz_took:?}");

    // The load goes on through the outage: several writes from every user.
    let load_through_outage = || {
        let attempts = attempts.lock().expect("not poisoned");
        (0..users.len()).all(|user| attempts.iter().filter(|a| a.user == user && a.started > killed_at).count() >= 3)
    };
    eventually("every user's writes during the outage to be answered", Duration::from_secs(60), load_through_outage)
        .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.expect("load task");
    }
    nats.restart().await;
    let attempts = attempts.lock().expect("not poisoned").clone();

    // Every answer within the deadline; during the outage, never a success.
    let slowest = attempts.iter().map(|attempt| attempt.took).max().unwrap_or_default();
    eprintln!("{} writes; slowest answer {slowest:?}; /readyz during the outage {readyz_took:?}", attempts.len());
    for attempt in &attempts {
        assert!(attempt.took <= ANSWER_WITHIN, "{attempt:?}");
        if attempt.started > killed_at {
            assert_eq!(attempt.status, 503, "{attempt:?}");
        }
    }
    let during: Vec<&Attempt> = attempts.iter().filter(|attempt| attempt.started > killed_at).collect();
    assert!(!during.is_empty(), "the load went on during the outage");

    // Whatever the gateway's NATS client buffered during the outage is sent, in
    // order, before anything published after it: once a new write is stored, so
    // is everything buffered before it that was ever going to be.
    wait_until_ready(&app).await;
    app.post("/api/v1/rooms", Some(&users[0].token), room_body("After the outage")).await.expect(201);
    let stored = stored_by_request(&stream_commits(&nats.url(), &app).await);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for attempt in &attempts {
        let times = stored.get(&attempt.request_id).copied().unwrap_or(0);
        *counts.entry(if attempt.code.is_empty() { "ok" } else { attempt.code.as_str() }).or_default() += 1;
        match (attempt.status, attempt.code.as_str()) {
            (200 | 201, _) | (202, "stored_not_visible") => {
                assert_eq!(times, 1, "an acknowledged write is stored once: {attempt:?}")
            }
            (503, "service_unavailable") => {
                assert_eq!(times, 0, "a write answered unavailable is not stored: {attempt:?}")
            }
            (503, "outcome_unknown") => assert!(times <= 1, "{attempt:?}"),
            _ => panic!("an unexpected answer: {attempt:?}"),
        }
    }
    eprintln!("answers: {counts:?}");

    // A retry with the same key settles every write that was not acknowledged:
    // stored exactly once, whether or not the first attempt was.
    let mut retried = Vec::new();
    for attempt in attempts.iter().filter(|attempt| attempt.status == 503) {
        let retry_id = Uuid::new_v4().to_string();
        let token = &users[attempt.user].token;
        let answer = app
            .keyed(attempt.method.clone(), &attempt.path, Some(token), attempt.body.clone(), &attempt.key, &retry_id)
            .await;
        assert!(matches!(answer.status.as_u16(), 200..=202), "the retry of {attempt:?}: {:#}", answer.body);
        retried.push((attempt.request_id.clone(), retry_id));
    }
    let stored = stored_by_request(&stream_commits(&nats.url(), &app).await);
    for (first, retry) in retried {
        let times = stored.get(&first).copied().unwrap_or(0) + stored.get(&retry).copied().unwrap_or(0);
        assert_eq!(times, 1, "a key's write is stored once ({first}, retried as {retry}): {stored:?}");
    }
}

async fn wait_until_ready(app: &TestApp) {
    let ready = async || {
        let ready = app.http.get(format!("{}/readyz", app.base_url)).send().await;
        ready.is_ok_and(|response| response.status().is_success())
    };
    eventually_async("the app to be ready after NATS came back", Duration::from_secs(60), ready).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_a_postgres_cut_answer_within_the_deadline() {
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let app =
        spawn_app_on(&crate::helpers::nats_url(), &format!("postgres://postgres@{}", proxy.address()), |_| {}).await;
    let alice = app.new_user("Alice").await;
    let room = app.create_room(&alice, room_body("Cut")).await;

    proxy.cut();
    let asked = Instant::now();
    let ready = app.http.get(format!("{}/readyz", app.base_url)).send().await.expect("readyz answers");
    let readyz_took = asked.elapsed();
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["postgres"], "down", "{body}");
    assert!(readyz_took < Duration::from_secs(1), "/readyz took {readyz_took:?}");

    // A query: 503 within the deadline.
    let asked = Instant::now();
    let rooms = app.get("/api/v1/rooms", &alice.token).await;
    let query_took = asked.elapsed();
    assert!(query_took <= ANSWER_WITHIN, "a query took {query_took:?}");
    rooms.expect_error(503, "service_unavailable");

    // A write: stored in the stream, but the read models cannot show it: 202.
    let asked = Instant::now();
    let update = app
        .keyed(
            Method::PUT,
            &format!("/api/v1/rooms/{room}"),
            Some(&alice.token),
            json!({ "maxUsers": 4 }),
            "cut-1",
            "req-cut-1",
        )
        .await;
    let write_took = asked.elapsed();
    eprintln!("postgres cut: /readyz {readyz_took:?}, query {query_took:?}, write {write_took:?} ({})", update.status);
    assert!(write_took <= ANSWER_WITHIN, "a write took {write_took:?}");
    update.expect(202);
    assert_eq!(update.body["code"], "stored_not_visible", "{:#}", update.body);
    assert_eq!(update.body["success"], true);
    let stored = stored_by_request(&stream_commits(&crate::helpers::nats_url(), &app).await);
    assert_eq!(stored.get("req-cut-1"), Some(&1));

    // Back: the same key answers with the room as changed, stored once.
    proxy.restore();
    let retry = async || {
        app.keyed(
            Method::PUT,
            &format!("/api/v1/rooms/{room}"),
            Some(&alice.token),
            json!({ "maxUsers": 4 }),
            "cut-1",
            "req-cut-2",
        )
        .await
    };
    eventually_async("a retry to be answered 200 once Postgres is back", Duration::from_secs(30), async || {
        retry().await.status.as_u16() == 200
    })
    .await;
    let retried = retry().await;
    retried.expect(200);
    assert_eq!(retried.data()["maxUsers"], 4);
    let stored = stored_by_request(&stream_commits(&crate::helpers::nats_url(), &app).await);
    assert_eq!(stored.get("req-cut-2"), None, "the retry stored nothing new");
}

/// The pid of `server`'s process, found by its configuration file (the testkit
/// keeps the child to itself), to pause and resume it.
fn pid_of(server: &NatsServer) -> u32 {
    let config = server.store_dir().parent().expect("the server's directory").join("nats.conf");
    let config = config.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).split('\0').any(|arg| arg == config) {
            return pid;
        }
    }
    panic!("no process runs {config}");
}

fn signal(pid: u32, name: &str) {
    let status =
        std::process::Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// A paused NATS takes the message and says nothing: the write's fate is unknown
/// when the deadline comes, so it is answered `outcome_unknown`, never
/// `unavailable`; once NATS resumes the write is stored, and a retry with the
/// same key is answered with success without storing it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_acknowledgement_does_not_come_is_answered_outcome_unknown() {
    let nats = NatsServer::start().await;
    let app = spawn_app_on(&nats.url(), &postgres_base_url(), |_| {}).await;
    let alice = app.new_user("Alice").await;
    let room = app.create_room(&alice, room_body("Paused")).await;
    let path = format!("/api/v1/rooms/{room}");
    let pid = pid_of(&nats);

    signal(pid, "STOP");
    let asked = Instant::now();
    let answer =
        app.keyed(Method::PUT, &path, Some(&alice.token), json!({ "maxUsers": 3 }), "paused-1", "req-p1").await;
    let took = asked.elapsed();
    signal(pid, "CONT");
    eprintln!("paused NATS: answered {} {} in {took:?}", answer.status, answer.error_code());
    answer.expect_error(503, "outcome_unknown");
    assert!(answer.headers.contains_key("retry-after"));
    assert!(took <= ANSWER_WITHIN, "took {took:?}");

    // The message was with the server all along: it lands, once.
    let landed = async || stored_by_request(&stream_commits(&nats.url(), &app).await).contains_key("req-p1");
    eventually_async("the unacknowledged write to land", Duration::from_secs(15), landed).await;
    let retried =
        app.keyed(Method::PUT, &path, Some(&alice.token), json!({ "maxUsers": 3 }), "paused-1", "req-p2").await;
    retried.expect(200);
    assert_eq!(retried.data()["maxUsers"], 3);
    let stored = stored_by_request(&stream_commits(&nats.url(), &app).await);
    assert_eq!((stored.get("req-p1"), stored.get("req-p2")), (Some(&1), None), "{stored:?}");
}

/// NATS pauses past the acknowledgement wait and resumes while the write is
/// being settled: the write is found stored (or published again and
/// deduplicated) and answered with success, within the deadline, stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_write_is_settled_before_the_answer() {
    let nats = NatsServer::start().await;
    // A longer deadline leaves a wide settling window: the acknowledgement is
    // waited for until 800 ms before the deadline (here 4.2 s), then settled.
    let deadline = Duration::from_secs(6);
    let app = spawn_app_on(&nats.url(), &postgres_base_url(), |config| config.request_deadline = deadline).await;
    let alice = app.new_user("Alice").await;
    let room = app.create_room(&alice, room_body("Settled")).await;
    let pid = pid_of(&nats);

    signal(pid, "STOP");
    let asked = Instant::now();
    let path = format!("/api/v1/rooms/{room}");
    let update = app.keyed(Method::PUT, &path, Some(&alice.token), json!({ "maxUsers": 7 }), "settle-1", "req-s1");
    // A fault schedule, not a wait for the system: NATS resumes at a set time,
    // inside the settling window (nothing outside the gateway shows when that
    // window opens).
    let resume = async {
        tokio::time::sleep(Duration::from_millis(4600)).await;
        signal(pid, "CONT");
    };
    let (answer, ()) = tokio::join!(update, resume);
    let took = asked.elapsed();
    eprintln!("NATS resumed while settling: answered {} in {took:?}", answer.status);
    answer.expect(200);
    assert_eq!(answer.data()["maxUsers"], 7);
    assert!(took <= deadline + Duration::from_millis(500), "took {took:?}");
    let stored = stored_by_request(&stream_commits(&nats.url(), &app).await);
    assert_eq!(stored.get("req-s1"), Some(&1), "{stored:?}");
}
