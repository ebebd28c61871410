//! `/users/settings`: defaults, partial updates and bad input.

use serde_json::{Value, json};

use crate::helpers::{TestUser, spawn_app};

const KINDS: [&str; 9] = [
    "room_invitation",
    "invitation_accepted",
    "invitation_declined",
    "meeting_reminder",
    "meeting_started",
    "meeting_rescheduled",
    "meeting_cancelled",
    "contact_added",
    "removed_from_room",
];

fn defaults() -> Value {
    let channels = json!({ "inApp": true, "email": true, "push": false });
    let notifications: serde_json::Map<String, Value> =
        KINDS.iter().map(|kind| (kind.to_string(), channels.clone())).collect();
    json!({ "timezone": "UTC", "locale": "en", "reminderMinutes": 10, "notifications": notifications })
}

async fn settings_of(app: &crate::helpers::TestApp, user: &TestUser) -> Value {
    let read = app.get("/api/v1/users/settings", &user.token).await;
    read.expect(200);
    read.data().clone()
}

#[tokio::test]
async fn a_new_user_has_the_defaults_and_changes_any_subset() {
    let app = spawn_app().await;
    let user = app.new_user("Vina").await;
    let other = app.new_user("Wawan").await;
    assert_eq!(settings_of(&app, &user).await, defaults());

    let changed = app.put("/api/v1/users/settings", &user.token, json!({ "timezone": "Asia/Jakarta" })).await;
    changed.expect(200);
    let mut expected = defaults();
    expected["timezone"] = json!("Asia/Jakarta");
    assert_eq!(changed.data(), &expected);

    let update = json!({
        "locale": "pt-BR",
        "reminderMinutes": 1440,
        "notifications": { "meeting_reminder": { "inApp": false, "email": false, "push": true } },
    });
    let changed = app.put("/api/v1/users/settings", &user.token, update).await;
    changed.expect(200);
    expected["locale"] = json!("pt-BR");
    expected["reminderMinutes"] = json!(1440);
    expected["notifications"]["meeting_reminder"] = json!({ "inApp": false, "email": false, "push": true });
    assert_eq!(changed.data(), &expected);
    // Nothing to change changes nothing.
    app.put("/api/v1/users/settings", &user.token, json!({})).await.expect(200);
    let zero = app.put("/api/v1/users/settings", &user.token, json!({ "reminderMinutes": 0 })).await;
    zero.expect(200);
    expected["reminderMinutes"] = json!(0);
    assert_eq!(settings_of(&app, &user).await, expected);
    assert_eq!(settings_of(&app, &other).await, defaults(), "settings are per user");
}

#[tokio::test]
async fn bad_settings_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let user = app.new_user("Yanti").await;
    let refused = [
        (json!({ "timezone": "Mars/Olympus_Mons" }), "invalid_input"),
        (json!({ "timezone": "" }), "invalid_input"),
        (json!({ "locale": "english!" }), "invalid_input"),
        (json!({ "locale": "e" }), "invalid_input"),
        (json!({ "reminderMinutes": 1441 }), "invalid_input"),
        (json!({ "reminderMinutes": -1 }), "invalid_body"),
        (json!({ "reminderMinutes": "10" }), "invalid_body"),
        (json!({ "notifications": { "birthday": { "inApp": true, "email": true, "push": true } } }), "invalid_body"),
        (json!({ "notifications": { "meeting_reminder": { "inApp": true } } }), "invalid_body"),
        (
            json!({ "notifications": { "meeting_reminder": { "inApp": true, "email": true, "push": true, "sms": true } } }),
            "invalid_body",
        ),
        (json!({ "theme": "dark" }), "invalid_body"),
    ];
    for (body, code) in refused {
        let answer = app.put("/api/v1/users/settings", &user.token, body.clone()).await;
        assert_eq!((answer.status.as_u16(), answer.error_code()), (400, code), "{body}: {:#}", answer.body);
    }
    // A valid change next to a bad one is not stored either.
    app.put("/api/v1/users/settings", &user.token, json!({ "locale": "id", "timezone": "Nowhere/Land" }))
        .await
        .expect_error(400, "invalid_input");
    assert_eq!(settings_of(&app, &user).await, defaults());
}

/// The document states the limits of SPEC §6's bodies, so a fuzzer and a client
/// agree with the server.
#[tokio::test]
async fn the_document_states_the_limits_of_invitations_and_settings() {
    use rapat_domain::settings::{Locale, ReminderMinutes};

    let app = spawn_app().await;
    let document = app.openapi_document().await;
    let schemas = &document["components"]["schemas"];
    let invite = &schemas["InviteRequest"]["properties"];
    assert_eq!(invite["userIds"]["maxItems"], 100, "{invite:#}");
    assert_eq!(invite["userIds"]["items"]["format"], "uuid", "{invite:#}");
    assert_eq!(invite["emails"]["maxItems"], 100, "{invite:#}");
    assert!(invite["emails"]["items"]["pattern"].is_string(), "{invite:#}");
    assert_eq!(schemas["InviteRequest"]["additionalProperties"], false);
    let settings = &schemas["UpdateSettingsRequest"]["properties"];
    assert_eq!(settings["reminderMinutes"]["minimum"], 0, "{settings:#}");
    assert_eq!(settings["reminderMinutes"]["maximum"], ReminderMinutes::MAX, "{settings:#}");
    assert_eq!(settings["locale"]["maxLength"], Locale::MAX_CHARS, "{settings:#}");
    let kinds = schemas["NotificationsView"]["properties"].as_object().expect("kinds");
    assert_eq!(kinds.len(), KINDS.len());
    assert!(KINDS.iter().all(|kind| kinds.contains_key(*kind)), "{kinds:?}");
    assert_eq!(schemas["NotificationsView"]["additionalProperties"], false);
    assert_eq!(schemas["ChannelsView"]["required"], json!(["inApp", "email", "push"]));
    let calendar = &document["paths"]["/api/v1/rooms/{roomId}/calendar.ics"]["get"]["responses"]["200"]["content"];
    assert!(calendar["text/calendar"].is_object(), "{calendar:#}");
}
