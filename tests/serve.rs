//! The `rapat` binary as an operator runs it, against the real NATS and Postgres.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Served, nats_url};

#[tokio::test]
async fn serve_creates_its_stream_and_database_and_answers_http() {
    let mut serve = Served::start(&[("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0")]).await;

    let health = reqwest::get(serve.url("/readyz")).await.expect("answers");
    assert_eq!(health.status(), 200, "ready: NATS and Postgres are up");
    let unknown = reqwest::get(serve.url("/api/v1/no-such-thing")).await.expect("answers");
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.expect("json");
    assert_eq!(body["success"], serde_json::json!(false));

    let jetstream = async_nats::jetstream::new(async_nats::connect(nats_url()).await.expect("NATS answers"));
    let mut stream =
        jetstream.get_stream(serve.namespace.events_stream()).await.expect("serve created the event stream");
    let info = stream.info().await.expect("stream info").clone();
    assert_eq!(info.config.subjects, vec![serve.namespace.all_event_subjects()]);
    assert!(info.config.deny_delete && info.config.deny_purge, "acknowledged events cannot be deleted");
    assert!(serve.is_running(), "rapat serve keeps running");
}

#[test]
fn serve_without_nats_exits_with_a_clear_message() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_rapat"))
        .args(["serve", "--nats-url", "nats://127.0.0.1:1"])
        .output()
        .expect("rapat runs");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to NATS at nats://127.0.0.1:1"), "stderr was: {stderr}");
}

#[test]
fn a_namespace_that_cannot_name_a_stream_is_refused_before_anything_connects() {
    let output = Command::new(env!("CARGO_BIN_EXE_rapat"))
        .args(["serve", "--nats-url", "nats://127.0.0.1:1"])
        .env("RAPAT_NAMESPACE", "team.a")
        .output()
        .expect("rapat runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid namespace \"team.a\""), "stderr was: {stderr}");
    assert!(!stderr.contains("cannot connect to NATS"), "refused before connecting: {stderr}");
}

#[test]
fn a_configuration_file_sets_defaults_that_the_environment_overrides() {
    let file = std::env::temp_dir().join(format!("rapat-{}.env", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, "# where NATS is not\nNATS_URL=nats://127.0.0.1:1\n").expect("write the file");
    let from_file = Command::new(env!("CARGO_BIN_EXE_rapat"))
        .args(["--config", file.to_str().expect("utf-8 path"), "serve"])
        .env_remove("NATS_URL")
        .output()
        .expect("rapat runs");
    let stderr = String::from_utf8_lossy(&from_file.stderr);
    assert!(stderr.contains("cannot connect to NATS at nats://127.0.0.1:1"), "the file's NATS_URL was used: {stderr}");

    let overridden = Command::new(env!("CARGO_BIN_EXE_rapat"))
        .args(["serve"])
        .env("RAPAT_CONFIG", &file)
        .env("NATS_URL", "nats://127.0.0.1:2")
        .output()
        .expect("rapat runs");
    let stderr = String::from_utf8_lossy(&overridden.stderr);
    assert!(
        stderr.contains("cannot connect to NATS at nats://127.0.0.1:2"),
        "the environment wins over the file: {stderr}"
    );

    std::fs::write(&file, "NATS_ULR=nats://typo\n").expect("write the file");
    let typo = Command::new(env!("CARGO_BIN_EXE_rapat"))
        .args(["--config", file.to_str().expect("utf-8 path"), "serve"])
        .output()
        .expect("rapat runs");
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(
        !typo.status.success() && stderr.contains("NATS_ULR, which no setting reads"),
        "a typo is refused: {stderr}"
    );
    let _ = std::fs::remove_file(&file);
}

#[test]
fn replay_is_rebuild_by_another_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_rapat")).args(["replay", "nonsense"]).output().expect("rapat runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown projection \"nonsense\""), "stderr was: {stderr}");
}

#[test]
fn rebuild_refuses_an_unknown_projection() {
    let output = Command::new(env!("CARGO_BIN_EXE_rapat")).args(["rebuild", "nonsense"]).output().expect("rapat runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown projection \"nonsense\""), "stderr was: {stderr}");
    assert!(stderr.contains("rooms"), "lists the known projections: {stderr}");
}

/// `rapat serve` runs the registration manager: an address whose registration
/// died after claiming it registers again once the grace period has passed.
#[tokio::test]
async fn serve_frees_an_address_whose_registration_died_after_claiming_it() {
    use rapat_commands::{CommandBus, CommandMetadata, EventStoreConfig, JetStreamEventStore};
    use rapat_domain::account::{Email, EmailClaim, EmailClaimCommand};
    use rapat_domain::ids::UserId;

    let serve =
        Served::start(&[("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0"), ("RAPAT_REGISTRATION_GRACE_SECONDS", "1")]).await;
    let nats = rapat_commands::connect(&nats_url()).await.expect("NATS answers");
    let store = JetStreamEventStore::<EmailClaim>::open(nats, EventStoreConfig::for_namespace(serve.namespace.clone()))
        .await
        .expect("the event store opens");
    let email = Email::parse("wati@example.com".to_owned()).expect("valid email");
    let claim = EmailClaimCommand::Claim {
        email: email.clone(),
        account: UserId::new_random(),
        now: std::time::SystemTime::now().into(),
    };
    CommandBus::new(store, ())
        .execute(&email.claim_id().to_string(), claim, CommandMetadata::system())
        .await
        .expect("claimed");

    let body = serde_json::json!({ "email": "wati@example.com", "password": "correct horse 1", "firstName": "Wati", "lastName": "Again" });
    let started = Instant::now();
    loop {
        let response =
            reqwest::Client::new().post(serve.url("/api/v1/auth/register")).json(&body).send().await.expect("answers");
        match response.status().as_u16() {
            201 => break,
            409 => assert!(started.elapsed() < Duration::from_secs(20), "the address is still taken after 20 s"),
            other => panic!("register answered {other}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `rapat serve` runs the reminder scheduler, and its timers outlive it: a
/// reminder whose moment passes while the process is killed is sent by the next
/// one, late and once.
#[tokio::test]
async fn a_reminder_due_while_serve_was_killed_is_sent_late_once_by_the_next_one() {
    let env = [("RAPAT_SFU_UDP_ADDR", "127.0.0.1:0"), ("RAPAT_REMINDER_LATE_AFTER_SECONDS", "1")];
    let mut serve = Served::start(&env).await;
    let host = serve.new_user("Host").await;
    let http = reqwest::Client::new();
    let settings = http
        .put(serve.url("/api/v1/users/settings"))
        .bearer_auth(&host.token)
        .json(&serde_json::json!({ "reminderMinutes": 0 }))
        .send()
        .await
        .expect("answers");
    assert_eq!(settings.status().as_u16(), 200);
    let due = chrono::Utc::now() + chrono::Duration::seconds(3);
    let room = serve
        .post(
            "/api/v1/rooms",
            Some(&host.token),
            None,
            serde_json::json!({ "name": "Through a crash", "maxUsers": 5,
                "scheduledAt": due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) }),
        )
        .await;
    assert!(room["id"].is_string(), "{room:#}");

    // Killed before the moment; back once it and the late grace have passed.
    let down = (due - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(1500);
    serve.kill_and_restart(down, &env).await;

    let started = Instant::now();
    let reminders = loop {
        let page: serde_json::Value = http
            .get(serve.url("/api/v1/notifications"))
            .bearer_auth(&host.token)
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
        let reminders: Vec<serde_json::Value> = page["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|notification| notification["kind"] == "meeting_reminder")
            .cloned()
            .collect();
        if !reminders.is_empty() {
            break reminders;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no reminder 30 s after the restart: {page:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reminders.len(), 1, "{reminders:#?}");
    assert_eq!(reminders[0]["payload"]["late"], true, "{:#}", reminders[0]);
    assert_eq!(reminders[0]["payload"]["room"]["id"], room["id"]);
}
