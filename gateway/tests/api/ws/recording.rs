//! The `recording` message (SPEC §10): every socket in the room, on any gateway,
//! hears when recording starts and stops, and a socket that joins while the room
//! is recorded is told at once.

use serde_json::{Value, json};

use super::{Client, connect, connected, room_with};
use crate::helpers::spawn_app;
use crate::recording::{start, stop};
use crate::rooms::{end, join};

fn recording_messages(messages: &[Value]) -> Vec<&Value> {
    messages.iter().filter(|message| message["type"] == "recording").collect()
}

/// What `to` saw before the chat `marker` that `from` sends.
async fn seen_before_marker(from: &mut Client, to: &mut Client, marker: &str) -> Vec<Value> {
    from.send(json!({ "type": "chat", "payload": { "message": marker } })).await;
    to.until_marker(marker).await
}

#[tokio::test]
async fn every_socket_hears_recording_start_and_stop_and_a_late_joiner_is_told_at_once() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let mut a = connected(&app.base_url, &room, &host.token).await;
    let mut b = connected(&second, &room, &guests[0].token).await;

    start(&app, &host, &room).await.expect(200);
    for client in [&mut a, &mut b] {
        let started = client.expect("recording").await;
        assert_eq!(started["payload"], json!({ "active": true }));
        assert_eq!(started["userId"], host.id.as_str(), "from the host who started it");
        assert_eq!(started["roomId"], room.as_str());
    }

    // A participant who joins while recording hears it right after `participants`.
    let late = app.new_user("Citra").await;
    join(&app, &late, &room, json!({})).await.expect(200);
    let mut c = connect(&second, &room, Some(&late.token)).await;
    assert_eq!(c.next().await["type"], "config");
    assert_eq!(c.next().await["type"], "participants");
    let told = c.next().await;
    assert_eq!((&told["type"], &told["payload"]), (&json!("recording"), &json!({ "active": true })), "{told:#}");
    assert_eq!(told["userId"], host.id.as_str());

    stop(&app, &host, &room).await.expect(200);
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(client.expect("recording").await["payload"], json!({ "active": false }));
    }
    let seen = seen_before_marker(&mut a, &mut b, "after stop").await;
    assert!(recording_messages(&seen).is_empty(), "each change is heard once: {seen:#?}");

    // A socket that joins when nothing is recorded hears nothing of it.
    let quiet = app.new_user("Dewi").await;
    join(&app, &quiet, &room, json!({})).await.expect(200);
    let mut d = connected(&app.base_url, &room, &quiet.token).await;
    let seen = seen_before_marker(&mut a, &mut d, "no recording").await;
    assert!(recording_messages(&seen).is_empty(), "{seen:#?}");

    // The room's end stops a recording: `{active: false}`, then `room_ended`.
    start(&app, &host, &room).await.expect(200);
    assert_eq!(b.expect("recording").await["payload"], json!({ "active": true }));
    end(&app, &host, &room).await.expect(200);
    assert_eq!(b.expect("recording").await["payload"], json!({ "active": false }));
    b.expect("room_ended").await;
}
