//! A socket lives only as long as its session: logging out, or a refresh-token
//! reuse that revokes the session, closes its sockets (4401) on every gateway; and
//! a token must name its session's user.

use serde_json::json;

use super::{connect, connected, room_with};
use crate::auth::token_with_subject;
use crate::helpers::spawn_app;

#[tokio::test]
async fn logging_out_closes_that_sessions_sockets_on_every_gateway() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    let guest = &guests[0];
    let other_login = app.login(&guest.email, &guest.password).await;
    let other_token = other_login.data()["token"].as_str().expect("token").to_string();

    let mut here = connected(&app.base_url, &room, &guest.token).await;
    let mut there = connected(&second, &room, &guest.token).await;
    let mut other_session = connected(&second, &room, &other_token).await;
    let mut host_socket = connected(&app.base_url, &room, &host.token).await;

    app.logout(&guest.token).await.expect(200);

    for socket in [&mut here, &mut there] {
        let (code, reason) = socket.expect_close().await;
        assert_eq!(code, 4401, "{reason}");
        assert!(!reason.is_empty());
    }
    // The user's other session and everyone else stay.
    other_session.send(json!({ "type": "chat", "payload": { "message": "still here" } })).await;
    assert_eq!(host_socket.expect("chat").await["payload"]["message"], "still here");
    assert_eq!(other_session.expect("chat").await["payload"]["message"], "still here");
    // And the logged-out token cannot open a new one.
    assert_eq!(connect(&second, &room, Some(&guest.token)).await.expect_close().await.0, 4401);
}

#[tokio::test]
async fn a_refresh_token_reuse_closes_the_sessions_sockets() {
    let app = spawn_app().await;
    let second = app.second_gateway().await;
    let (room, _host, guests) = room_with(&app, &["Budi"]).await;
    let guest = &guests[0];
    let mut socket = connected(&second, &room, &guest.token).await;

    app.refresh(&guest.refresh_token).await.expect(200);
    // The spent token again: the session is revoked.
    app.refresh(&guest.refresh_token).await.expect_error(401, "refresh_token_reused");

    assert_eq!(socket.expect_close().await.0, 4401);
}

#[tokio::test]
async fn a_token_whose_subject_is_not_its_sessions_user_opens_no_socket() {
    let app = spawn_app().await;
    let (room, host, guests) = room_with(&app, &["Budi"]).await;
    // The host's session, but the guest (a participant) as the subject.
    let mixed = token_with_subject(&host.token, &guests[0].id);
    connected(&app.base_url, &room, &host.token).await;

    let (code, reason) = connect(&app.base_url, &room, Some(&mixed)).await.expect_close().await;
    assert_eq!(code, 4401, "{reason}");
}
