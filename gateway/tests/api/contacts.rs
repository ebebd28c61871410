//! `/users/contacts`: list, add, remove.

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, TestUser, spawn_app};

impl TestApp {
    pub async fn add_contact(&self, owner: &TestUser, contact_id: &str) -> TestResponse {
        self.post("/api/v1/users/contacts", Some(&owner.token), json!({ "contactId": contact_id })).await
    }

    /// The ids in `owner`'s contact list, in its order.
    pub async fn contact_ids(&self, owner: &TestUser) -> Vec<String> {
        let listed = self.get("/api/v1/users/contacts", &owner.token).await;
        listed.expect(200);
        let contacts = listed.data().as_array().expect("a list of contacts");
        contacts.iter().map(|contact| contact["id"].as_str().expect("an id").to_string()).collect()
    }
}

#[tokio::test]
async fn added_contacts_are_listed_as_user_summaries() {
    let app = spawn_app().await;
    let owner = app.new_user("Yusuf").await;
    let zahra = app.new_user("Zahra").await;
    let agus = app.new_user("Agus").await;
    assert!(app.contact_ids(&owner).await.is_empty());

    let added = app.add_contact(&owner, &zahra.id).await;

    added.expect(201);
    assert_eq!(added.data()["id"], json!(zahra.id));
    assert_eq!(added.data().get("email"), None, "Zahra has not shared her email: {:#}", added.body);
    app.add_contact(&owner, &agus.id).await.expect(201);
    let listed = app.get("/api/v1/users/contacts", &owner.token).await;
    listed.expect(200);
    let summary = &listed.data()[1];
    let mut keys: Vec<&str> = summary.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["avatar", "firstName", "id", "lastName", "status"], "{summary:#}");
    assert_eq!(app.contact_ids(&owner).await, [agus.id.as_str(), zahra.id.as_str()], "ordered by name");
    // Lists are per owner, and adding is one-way.
    assert!(app.contact_ids(&zahra).await.is_empty());
}

#[tokio::test]
async fn contact_summaries_follow_profile_changes() {
    let app = spawn_app().await;
    let owner = app.new_user("Bayu").await;
    let contact = app.new_user("Cahya").await;
    app.add_contact(&owner, &contact.id).await.expect(201);

    app.put("/api/v1/users/profile", &contact.token, json!({ "firstName": "Cahyani", "status": "away" }))
        .await
        .expect(200);

    let listed = app.get("/api/v1/users/contacts", &owner.token).await;
    assert_eq!(
        (listed.data()[0]["firstName"].as_str(), listed.data()[0]["status"].as_str()),
        (Some("Cahyani"), Some("away"))
    );
}

#[tokio::test]
async fn adding_refuses_unknown_self_duplicate_and_malformed_ids() {
    let app = spawn_app().await;
    let owner = app.new_user("Dimas").await;
    let contact = app.new_user("Eka").await;

    app.add_contact(&owner, &Uuid::new_v4().to_string()).await.expect_error(404, "user_not_found");
    app.add_contact(&owner, &owner.id).await.expect_error(400, "cannot_add_self");
    app.add_contact(&owner, &contact.id).await.expect(201);
    app.add_contact(&owner, &contact.id).await.expect_error(409, "already_a_contact");
    app.add_contact(&owner, "not-a-uuid").await.expect_error(400, "invalid_body");
    app.post("/api/v1/users/contacts", Some(&owner.token), json!({})).await.expect_error(400, "invalid_body");
    app.post("/api/v1/users/contacts", Some(&owner.token), json!({ "contactId": 7 }))
        .await
        .expect_error(400, "invalid_body");

    assert_eq!(app.contact_ids(&owner).await, [contact.id.as_str()]);
}

#[tokio::test]
async fn removing_a_contact_and_removing_a_non_contact() {
    let app = spawn_app().await;
    let owner = app.new_user("Fitri").await;
    let contact = app.new_user("Gilang").await;
    let stranger = app.new_user("Hana").await;
    app.add_contact(&owner, &contact.id).await.expect(201);

    let removed = app.delete(&format!("/api/v1/users/contacts/{}", contact.id), &owner.token).await;

    removed.expect(200);
    assert_eq!(removed.body["success"], json!(true));
    assert!(removed.body["message"].is_string());
    assert!(app.contact_ids(&owner).await.is_empty());
    let again = app.delete(&format!("/api/v1/users/contacts/{}", contact.id), &owner.token).await;
    again.expect_error(404, "not_a_contact");
    app.delete(&format!("/api/v1/users/contacts/{}", stranger.id), &owner.token)
        .await
        .expect_error(404, "not_a_contact");
    app.delete("/api/v1/users/contacts/not-a-uuid", &owner.token).await.expect_error(400, "invalid_path");
    // A removed contact can be added again.
    app.add_contact(&owner, &contact.id).await.expect(201);
}

#[tokio::test]
async fn contact_endpoints_need_a_token() {
    let app = spawn_app().await;
    let user = app.new_user("Irfan").await;
    let path = "/api/v1/users/contacts";
    app.request(Method::GET, path, None, None).await.expect_error(401, "missing_token");
    let body = Some(json!({ "contactId": user.id }));
    app.request(Method::POST, path, None, body).await.expect_error(401, "missing_token");
    app.request(Method::DELETE, &format!("{path}/{}", user.id), None, None).await.expect_error(401, "missing_token");
    app.request(Method::GET, path, Some("garbage"), None).await.expect_error(401, "invalid_token");
}

#[tokio::test]
async fn an_email_is_shown_only_between_mutual_contacts() {
    let app = spawn_app().await;
    let owner = app.new_user("Joko").await;
    let other = app.new_user("Kirana").await;

    // Adding anyone by id reveals nothing of theirs.
    let added = app.add_contact(&owner, &other.id).await;
    added.expect(201);
    assert!(!added.body.to_string().contains(&other.email), "{:#}", added.body);
    let listed = app.get("/api/v1/users/contacts", &owner.token).await;
    assert!(!listed.body.to_string().contains(&other.email), "{:#}", listed.body);

    // Adding back accepts: each now sees the other's email.
    let back = app.add_contact(&other, &owner.id).await;
    back.expect(201);
    assert_eq!(back.data()["email"], json!(owner.email));
    let listed = app.get("/api/v1/users/contacts", &owner.token).await;
    assert_eq!(listed.data()[0]["email"], json!(other.email));

    // Removing withdraws it.
    app.delete(&format!("/api/v1/users/contacts/{}", owner.id), &other.token).await.expect(200);
    let listed = app.get("/api/v1/users/contacts", &owner.token).await;
    assert_eq!(listed.data()[0].get("email"), None, "{:#}", listed.body);
}
