//! Invitations: `/rooms/{roomId}/invitations`, `/users/invitations` and
//! `/invitations/{id}/accept|decline`.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, TestUser, spawn_app};

impl TestApp {
    pub async fn invite(&self, host: &TestUser, room: &str, body: Value) -> TestResponse {
        self.post(&format!("/api/v1/rooms/{room}/invitations"), Some(&host.token), body).await
    }

    /// Invites one account and returns the invitation's id.
    pub async fn invite_user(&self, host: &TestUser, room: &str, invitee: &TestUser) -> String {
        let invited = self.invite(host, room, json!({ "userIds": [invitee.id] })).await;
        invited.expect(201);
        invited.data()[0]["id"].as_str().expect("an invitation id").to_string()
    }

    pub async fn answer_invitation(&self, user: &TestUser, invitation: &str, answer: &str) -> TestResponse {
        self.post(&format!("/api/v1/invitations/{invitation}/{answer}"), Some(&user.token), json!({})).await
    }

    pub async fn room_invitations(&self, host: &TestUser, room: &str) -> Vec<Value> {
        let listed = self.get(&format!("/api/v1/rooms/{room}/invitations"), &host.token).await;
        listed.expect(200);
        listed.data().as_array().expect("a list").clone()
    }

    pub async fn my_invitations(&self, user: &TestUser) -> Vec<Value> {
        let listed = self.get("/api/v1/users/invitations", &user.token).await;
        listed.expect(200);
        listed.data().as_array().expect("a list").clone()
    }
}

fn new_address() -> String {
    format!("guest.{}@example.com", Uuid::new_v4().simple())
}

/// The invitation in `list` for the invitee `key` = `value`.
fn find<'a>(list: &'a [Value], key: &str, value: &str) -> &'a Value {
    list.iter().find(|item| item[key] == json!(value)).unwrap_or_else(|| panic!("no {key} {value} in {list:#?}"))
}

#[tokio::test]
async fn the_host_invites_accounts_and_addresses_and_inviting_again_changes_nothing() {
    let app = spawn_app().await;
    let host = app.new_user("Hana").await;
    let budi = app.new_user("Budi").await;
    let citra = app.new_user("Citra").await;
    let room = app.create_room(&host, json!({ "name": "Planning", "maxUsers": 5 })).await;
    let guest = new_address();

    let invited = app
        .invite(
            &host,
            &room,
            json!({ "userIds": [budi.id, budi.id], "emails": [guest.to_uppercase(), citra.email.to_uppercase()] }),
        )
        .await;

    invited.expect(201);
    let data = invited.data().as_array().expect("a list").clone();
    assert_eq!(data.len(), 3, "one invitation per distinct invitee: {data:#?}");
    let to_budi = find(&data, "inviteeId", &budi.id);
    assert_eq!(to_budi.get("email"), None);
    assert_eq!((to_budi["roomId"].as_str(), to_budi["status"].as_str()), (Some(room.as_str()), Some("pending")));
    assert!(to_budi["createdAt"].as_str().is_some());
    // An address of an account invites that account.
    assert_eq!(find(&data, "inviteeId", &citra.id).get("email"), None);
    let to_guest = find(&data, "email", &guest);
    assert_eq!(to_guest.get("inviteeId"), None);

    let again = app.invite(&host, &room, json!({ "userIds": [budi.id], "emails": [guest] })).await;
    again.expect(201);
    let again = again.data().as_array().expect("a list").clone();
    assert_eq!(find(&again, "inviteeId", &budi.id), to_budi, "the same invitation, unchanged");
    assert_eq!(find(&again, "email", &guest), to_guest);
    assert_eq!(app.room_invitations(&host, &room).await.len(), 3);
}

#[tokio::test]
async fn only_the_host_of_a_room_not_ended_invites_lists_and_revokes() {
    let app = spawn_app().await;
    let host = app.new_user("Indra").await;
    let budi = app.new_user("Joko").await;
    let room = app.create_room(&host, json!({ "name": "Sync", "maxUsers": 5 })).await;
    let invitation = app.invite_user(&host, &room, &budi).await;

    app.invite(&budi, &room, json!({ "userIds": [host.id] })).await.expect_error(403, "not_host");
    app.get(&format!("/api/v1/rooms/{room}/invitations"), &budi.token).await.expect_error(403, "not_host");
    app.delete(&format!("/api/v1/rooms/{room}/invitations/{invitation}"), &budi.token)
        .await
        .expect_error(403, "not_host");
    let unknown = Uuid::new_v4();
    app.invite(&host, &unknown.to_string(), json!({ "userIds": [budi.id] })).await.expect_error(404, "room_not_found");
    app.get(&format!("/api/v1/rooms/{unknown}/invitations"), &host.token).await.expect_error(404, "room_not_found");

    app.post(&format!("/api/v1/rooms/{room}/end"), Some(&host.token), json!({})).await.expect(200);
    let late = app.new_user("Kartika").await;
    app.invite(&host, &room, json!({ "userIds": [late.id] })).await.expect_error(409, "room_ended");
    assert_eq!(app.room_invitations(&host, &room).await.len(), 1);
}

#[tokio::test]
async fn bad_invitations_are_refused_and_store_nothing() {
    let app = spawn_app().await;
    let host = app.new_user("Lestari").await;
    let budi = app.new_user("Made").await;
    let room = app.create_room(&host, json!({ "name": "Retro", "maxUsers": 5 })).await;

    app.invite(&host, &room, json!({})).await.expect_error(400, "no_invitees");
    app.invite(&host, &room, json!({ "userIds": [], "emails": [] })).await.expect_error(400, "no_invitees");
    let many: Vec<String> = (0..100).map(|_| new_address()).collect();
    app.invite(&host, &room, json!({ "userIds": [budi.id], "emails": many }))
        .await
        .expect_error(400, "too_many_invitees");
    app.invite(&host, &room, json!({ "userIds": [budi.id, host.id] })).await.expect_error(400, "cannot_invite_self");
    app.invite(&host, &room, json!({ "emails": [format!("  {}  ", host.email.to_uppercase())] }))
        .await
        .expect_error(400, "cannot_invite_self");
    for bad in ["not-an-email", "a@b", "two@@example.com", ""] {
        app.invite(&host, &room, json!({ "userIds": [budi.id], "emails": [new_address(), bad] }))
            .await
            .expect_error(400, "invalid_email");
    }
    app.invite(&host, &room, json!({ "userIds": [budi.id, Uuid::new_v4()] })).await.expect_error(404, "user_not_found");
    app.invite(&host, &room, json!({ "userIds": ["nope"] })).await.expect_error(400, "invalid_body");
    app.invite(&host, &room, json!({ "userIds": [budi.id], "roles": [] })).await.expect_error(400, "invalid_body");

    assert!(app.room_invitations(&host, &room).await.is_empty(), "nothing was stored");
    assert!(app.my_invitations(&budi).await.is_empty());
}

#[tokio::test]
async fn the_invitee_sees_accepts_and_declines_and_nobody_else_can() {
    let app = spawn_app().await;
    let host = app.new_user("Nadia").await;
    let budi = app.new_user("Oka").await;
    let other = app.new_user("Putri").await;
    let when = (chrono::Utc::now() + chrono::TimeDelta::days(20)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let room = app.create_room(&host, json!({ "name": "Launch", "maxUsers": 5, "scheduledAt": when })).await;
    let invitation = app.invite_user(&host, &room, &budi).await;

    let mine = app.my_invitations(&budi).await;
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["id"], json!(invitation));
    assert_eq!(mine[0]["roomName"], json!("Launch"));
    assert_eq!(mine[0]["scheduledAt"], json!(when));
    assert_eq!(
        (mine[0]["host"]["id"].as_str(), mine[0]["host"]["firstName"].as_str()),
        (Some(&*host.id), Some("Nadia"))
    );
    assert_eq!(mine[0]["host"]["name"], json!("Nadia Tester"));
    assert!(app.my_invitations(&other).await.is_empty());

    app.answer_invitation(&other, &invitation, "accept").await.expect_error(403, "not_the_invitee");
    app.answer_invitation(&host, &invitation, "decline").await.expect_error(403, "not_the_invitee");
    app.answer_invitation(&budi, &Uuid::new_v4().to_string(), "accept").await.expect_error(404, "invitation_not_found");
    app.answer_invitation(&budi, "nope", "accept").await.expect_error(400, "invalid_path");

    let accepted = app.answer_invitation(&budi, &invitation, "accept").await;
    accepted.expect(200);
    assert_eq!(accepted.data()["status"], json!("accepted"));
    app.answer_invitation(&budi, &invitation, "accept").await.expect(200);
    assert!(app.my_invitations(&budi).await.is_empty(), "only pending invitations are listed");
    let declined = app.answer_invitation(&budi, &invitation, "decline").await;
    declined.expect(200);
    assert_eq!(declined.data()["status"], json!("declined"));
    assert_eq!(app.room_invitations(&host, &room).await[0]["status"], json!("declined"));
}

#[tokio::test]
async fn a_revoked_invitation_cannot_be_answered_until_issued_anew() {
    let app = spawn_app().await;
    let host = app.new_user("Rudi").await;
    let budi = app.new_user("Sari").await;
    let room = app.create_room(&host, json!({ "name": "Board", "maxUsers": 5 })).await;
    let other_room = app.create_room(&host, json!({ "name": "Other", "maxUsers": 5 })).await;
    let invitation = app.invite_user(&host, &room, &budi).await;

    app.delete(&format!("/api/v1/rooms/{other_room}/invitations/{invitation}"), &host.token)
        .await
        .expect_error(404, "invitation_not_found");
    let revoked = app.delete(&format!("/api/v1/rooms/{room}/invitations/{invitation}"), &host.token).await;
    revoked.expect(200);
    assert_eq!(revoked.data()["status"], json!("revoked"));
    app.delete(&format!("/api/v1/rooms/{room}/invitations/{invitation}"), &host.token).await.expect(200);
    assert!(app.my_invitations(&budi).await.is_empty());
    app.answer_invitation(&budi, &invitation, "accept").await.expect_error(409, "invitation_revoked");

    assert_eq!(app.invite_user(&host, &room, &budi).await, invitation, "the same invitation, issued anew");
    app.answer_invitation(&budi, &invitation, "accept").await.expect(200);
}

#[tokio::test]
async fn an_invitation_to_an_address_becomes_the_account_registered_with_it() {
    let app = spawn_app().await;
    let host = app.new_user("Tono").await;
    let room = app.create_room(&host, json!({ "name": "Onboarding", "maxUsers": 5 })).await;
    let address = new_address();
    let invited = app.invite(&host, &room, json!({ "emails": [address] })).await;
    invited.expect(201);
    let invitation = invited.data()[0]["id"].as_str().expect("an id").to_string();

    let registered = app.register(&address.to_uppercase(), "correct horse 1", "Umi", "Tester").await;
    registered.expect(201);
    let user_id = registered.data()["user"]["id"].as_str().expect("an id").to_string();
    // The registration bound it before answering.
    let listed = app.room_invitations(&host, &room).await;
    assert_eq!((listed[0]["inviteeId"].as_str(), listed[0]["email"].as_str()), (Some(&*user_id), Some(&*address)));

    let login = app.login(&address, "correct horse 1").await;
    login.expect(200);
    let umi = TestUser {
        id: user_id.clone(),
        email: address.clone(),
        password: "correct horse 1".into(),
        first_name: "Umi".into(),
        token: login.data()["token"].as_str().expect("a token").to_string(),
        refresh_token: String::new(),
    };
    let mine = app.my_invitations(&umi).await;
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["id"], json!(invitation));
    let accepted = app.answer_invitation(&umi, &invitation, "accept").await;
    accepted.expect(200);
    assert_eq!(
        (accepted.data()["status"].as_str(), accepted.data()["inviteeId"].as_str()),
        (Some("accepted"), Some(&*user_id))
    );
}

/// An invitation to an address that the registration did not bind (its process
/// stopped in between, say) is bound when the account answers it.
#[tokio::test]
async fn answering_an_unbound_invitation_to_ones_address_binds_it_first() {
    use std::time::Duration;

    use rapat_commands::{CommandBus, CommandMetadata, JetStreamEventStore};
    use rapat_domain::account::Email;
    use rapat_domain::ids::{RoomId, UserId};
    use rapat_domain::invitation::{Invitation, InvitationCommand, Invitee};
    use rapat_projections::{Projection, ProjectionPositions};

    let app = spawn_app().await;
    let host = app.new_user("Vivi").await;
    let umi = app.new_user("Wulan").await;
    let stranger = app.new_user("Xena").await;
    let room = app.create_room(&host, json!({ "name": "Kickoff", "maxUsers": 5 })).await;
    // Issued to the address itself, as it was before the account existed.
    let nats = rapat_commands::connect(&crate::helpers::nats_url()).await.expect("NATS");
    let store = JetStreamEventStore::<Invitation>::open(nats, app.event_store.clone()).await.expect("store");
    let bus = CommandBus::new(store, ());
    let room_id = RoomId::from_uuid(room.parse().expect("a UUID"));
    let invitee = Invitee::Email(Email::parse(umi.email.clone()).expect("an address"));
    let invitation = Invitation::id_for(room_id, &invitee);
    let host_id = UserId::from_uuid(host.id.parse().expect("a UUID"));
    let command = InvitationCommand::Issue { room: room_id, host: host_id, invitee };
    let outcome =
        bus.execute(&invitation.to_string(), command, CommandMetadata::by(host.id.clone())).await.expect("issued");
    let positions = ProjectionPositions::start(app.db.clone());
    positions
        .wait_for(&[Projection::Invitations], outcome.stream_sequence, Duration::from_secs(10))
        .await
        .expect("visible");
    let invitation = invitation.to_string();
    assert_eq!(app.room_invitations(&host, &room).await[0].get("inviteeId"), None, "not bound");

    assert_eq!(app.my_invitations(&umi).await[0]["id"], json!(invitation));
    app.answer_invitation(&stranger, &invitation, "accept").await.expect_error(403, "not_the_invitee");
    let declined = app.answer_invitation(&umi, &invitation, "decline").await;
    declined.expect(200);
    assert_eq!(
        (declined.data()["status"].as_str(), declined.data()["inviteeId"].as_str()),
        (Some("declined"), Some(&*umi.id))
    );
    assert_eq!(app.room_invitations(&host, &room).await[0]["inviteeId"], json!(umi.id));
}

/// An accepted invitation stands in for a room's password; a revoked one no longer does.
#[tokio::test]
async fn an_accepted_invitation_lets_its_invitee_into_a_password_room() {
    let app = spawn_app().await;
    let host = app.new_user("Yudi").await;
    let guest = app.new_user("Zaki").await;
    let room = app.create_room(&host, json!({ "name": "Private", "maxUsers": 5, "password": "s3cret-pass" })).await;
    let join = format!("/api/v1/rooms/{room}/join");
    let invitation = app.invite_user(&host, &room, &guest).await;

    app.post(&join, Some(&guest.token), json!({})).await.expect_error(403, "wrong_password");
    app.answer_invitation(&guest, &invitation, "accept").await.expect(200);
    let joined = app.post(&join, Some(&guest.token), json!({})).await;
    joined.expect(200);
    assert_eq!(joined.data()["participant"]["userId"], json!(guest.id));
    app.post(&format!("/api/v1/rooms/{room}/leave"), Some(&guest.token), json!({})).await.expect(200);

    app.delete(&format!("/api/v1/rooms/{room}/invitations/{invitation}"), &host.token).await.expect(200);
    app.post(&join, Some(&guest.token), json!({})).await.expect_error(403, "wrong_password");
    app.post(&join, Some(&guest.token), json!({ "password": "s3cret-pass" })).await.expect(200);
}
