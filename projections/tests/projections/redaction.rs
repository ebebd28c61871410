//! Secrets in the audit trail: redacted as the projection writes it, and the
//! migration that redacts rows written before that.

use serde_json::json;
use uuid::Uuid;

use crate::support::TestEnv;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

#[tokio::test]
async fn the_audit_projection_stores_payloads_redacted() {
    let env = TestEnv::new().await;
    let room = Uuid::new_v4();
    let payload = json!({ "hostId": Uuid::new_v4(), "name": "Locked", "description": "", "passwordHash": HASH, "maxUsers": 3, "scheduledAt": null });
    env.append_raw("room", room, vec![("RoomCreated".to_owned(), 1, payload)]).await;
    let projector = env.spawn_projector(env.pool.clone());
    env.wait_caught_up(std::time::Duration::from_secs(30)).await;
    let stored: serde_json::Value = sqlx::query_scalar("SELECT payload FROM audit_events WHERE aggregate_id = $1")
        .bind(room.to_string())
        .fetch_one(&env.pool)
        .await
        .expect("the audit row");
    assert_eq!(stored["passwordHash"], "[redacted]");
    assert_eq!(stored["name"], "Locked");
    projector.stop().await;
}

#[tokio::test]
async fn the_migration_redacts_rows_stored_before_it() {
    let env = TestEnv::new().await;
    // As an older build stored them.
    let rows = [
        ("RoomCreated", json!({ "name": "Old", "passwordHash": HASH })),
        ("RoomCreated", json!({ "name": "Open", "passwordHash": null })),
        ("SessionStarted", json!({ "userId": Uuid::new_v4(), "refreshHash": "ab".repeat(32) })),
        ("ParticipantJoined", json!({ "userId": Uuid::new_v4() })),
    ];
    for (sequence, (event_type, payload)) in rows.iter().enumerate() {
        sqlx::query(
            "INSERT INTO audit_events (event_id, stream_sequence, aggregate_type, aggregate_id, aggregate_version, \
             event_type, schema_version, command_id, occurred_at, payload) VALUES ($1, $2, 'room', 'x', $2, $3, 1, 'c', now(), $4)",
        )
        .bind(Uuid::new_v4())
        .bind(i64::try_from(sequence).expect("small") + 1)
        .bind(event_type)
        .bind(payload)
        .execute(&env.pool)
        .await
        .expect("inserted");
    }
    sqlx::raw_sql(include_str!("../../migrations/0005_redact_audit_secrets.sql"))
        .execute(&env.pool)
        .await
        .expect("migrates");
    let payloads: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT payload FROM audit_events ORDER BY stream_sequence")
            .fetch_all(&env.pool)
            .await
            .expect("rows");
    assert_eq!(payloads[0], json!({ "name": "Old", "passwordHash": "[redacted]" }));
    assert_eq!(payloads[1], json!({ "name": "Open", "passwordHash": null }), "no password stays no password");
    assert_eq!(payloads[2]["refreshHash"], "[redacted]");
    assert_eq!(payloads[3], rows[3].1);
}
