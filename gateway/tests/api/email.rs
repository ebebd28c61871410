//! The email channel (SPEC §7) against a real SMTP server on loopback
//! (`email_sink.rs`): every kind of email arrives with its recipient, subject,
//! links, plain text and HTML, the invitation with its calendar file; a message
//! sent again keeps its `Message-ID`; emails owed while the server is down
//! arrive when it comes back, none lost; an address the server refuses fails.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rapat_gateway::{ReminderConfig, ReminderScheduler};
use rapat_testkit::eventually_async;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::email_sink::{MAIL_WAIT, Mail, PUBLIC_URL, SmtpSink, start_email_worker};
use crate::helpers::{TestApp, spawn_app_with};

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub async fn email_app() -> TestApp {
    spawn_app_with(|config| config.public_url = Some(PUBLIC_URL.to_owned())).await
}

/// The delivery id the outbox gave the email of `kind` to `recipient` (an
/// account id or an address).
async fn delivery_id(app: &TestApp, kind: &str, recipient: &str) -> Uuid {
    sqlx::query_scalar(
        "SELECT id FROM deliveries WHERE channel = 'email' AND kind = $1 \
         AND (recipient_id::text = $2 OR address = $2) ORDER BY created_at LIMIT 1",
    )
    .bind(kind)
    .bind(recipient)
    .fetch_one(&app.db)
    .await
    .expect("a delivery row")
}

/// Plain text and HTML alternatives, the link in both, and the stable id.
#[track_caller]
fn check_shape(mail: &Mail, link: &str, delivery: Uuid) {
    assert!(mail.content_types.iter().any(|t| t == "multipart/alternative"), "{:?}", mail.content_types);
    assert!(mail.content_types.iter().any(|t| t == "text/plain"), "{:?}", mail.content_types);
    assert!(mail.content_types.iter().any(|t| t == "text/html"), "{:?}", mail.content_types);
    assert!(mail.text.contains(link), "{link} in {}", mail.text);
    assert!(mail.html.contains(&format!("href=\"{link}")), "{link} in {}", mail.html);
    assert_eq!(mail.message_id, format!("{delivery}@meet.example.test"));
    assert_eq!(mail.from, "noreply@meet.example.test");
}

async fn start_scheduler(app: &TestApp) -> CancellationToken {
    let nats = rapat_commands::connect(&app.nats_url).await.expect("NATS");
    let config = ReminderConfig { poll_every: Duration::from_millis(500), ..Default::default() };
    let scheduler =
        ReminderScheduler::open(nats, app.event_store.clone(), app.db.clone(), config).await.expect("scheduler");
    let stop = CancellationToken::new();
    tokio::spawn(scheduler.run(stop.clone()));
    stop
}

#[tokio::test]
async fn every_email_arrives_with_its_recipient_subject_links_text_and_html() {
    let sink = SmtpSink::start().await;
    let app = email_app().await;
    let _worker = start_email_worker(&app, &sink.url());
    let host = app.new_user("Hana").await;
    let guest = app.new_user("Budi").await;
    let stranger = format!("new.{}@example.com", Uuid::new_v4().simple());

    // Registration: the verification email.
    let verify = sink.mail(&guest.email, "Verify your email address").await;
    let link = format!("{PUBLIC_URL}/#/verify-email?token={}.", guest.id);
    check_shape(&verify, &link, delivery_id(&app, "email_verification", &guest.id).await);

    // An invitation to an account and one to an address without one, each with
    // the meeting's calendar file.
    let at = Utc::now() + chrono::Duration::days(2);
    let room = app
        .create_room(
            &host,
            json!({ "name": "Plan <Q3>", "maxUsers": 5, "scheduledAt": rfc3339(at), "durationMinutes": 30 }),
        )
        .await;
    app.invite(&host, &room, json!({ "userIds": [guest.id], "emails": [stranger] })).await.expect(201);
    let room_link = format!("{PUBLIC_URL}/#/rooms/{room}");
    for (to, recipient) in [(&guest.email, &guest.id), (&stranger, &stranger)] {
        let invitation = sink.mail(to, "Invitation: Plan <Q3>").await;
        check_shape(&invitation, &room_link, delivery_id(&app, "room_invitation", recipient).await);
        assert!(invitation.text.contains("Hana Tester invited you"), "{}", invitation.text);
        assert!(invitation.html.contains("Plan &lt;Q3&gt;"), "{}", invitation.html);
        let [(name, content_type, ics)] = &invitation.attachments[..] else {
            panic!("one attachment: {:?}", invitation.attachments)
        };
        assert_eq!((name.as_str(), content_type.as_str()), ("meeting.ics", "text/calendar"));
        assert!(ics.contains(&format!("UID:{room}@rapat")), "{ics}");
        assert!(ics.contains("SEQUENCE:0"), "{ics}");
        assert!(ics.contains(&format!("URL:{room_link}")), "{ics}");
    }
    let stranger_mail = sink.mail(&stranger, "Invitation").await;
    assert!(stranger_mail.text.contains(&format!("{PUBLIC_URL}/#/register?email=new.")), "{}", stranger_mail.text);

    // Moved, then cancelled.
    let later = rfc3339(at + chrono::Duration::hours(3));
    app.put(&format!("/api/v1/rooms/{room}"), &host.token, json!({ "scheduledAt": later })).await.expect(200);
    let moved = sink.mail(&guest.email, "Rescheduled: Plan <Q3>").await;
    check_shape(&moved, &room_link, delivery_id(&app, "meeting_rescheduled", &guest.id).await);
    assert!(moved.attachments.iter().any(|(_, _, ics)| ics.contains("SEQUENCE:1")), "{:?}", moved.attachments);
    crate::rooms::end(&app, &host, &room).await.expect(200);
    let cancelled = sink.mail(&guest.email, "Cancelled: Plan <Q3>").await;
    assert!(cancelled.text.contains("Hana Tester cancelled \"Plan <Q3>\""), "{}", cancelled.text);
    assert!(cancelled.attachments.iter().any(|(_, _, ics)| ics.contains("STATUS:CANCELLED")));

    // A reminder: the guest wants it at the start, seconds from now.
    app.put("/api/v1/users/settings", &guest.token, json!({ "reminderMinutes": 0 })).await.expect(200);
    let soon = app
        .create_room(&host, json!({ "name": "Standup", "maxUsers": 5, "scheduledAt": rfc3339(Utc::now() + chrono::Duration::seconds(3)) }))
        .await;
    app.invite_user(&host, &soon, &guest).await;
    let _scheduler = start_scheduler(&app).await;
    let reminder = sink.mail(&guest.email, "Reminder: Standup").await;
    check_shape(
        &reminder,
        &format!("{PUBLIC_URL}/#/rooms/{soon}"),
        delivery_id(&app, "meeting_reminder", &guest.id).await,
    );

    // A password reset.
    app.post("/api/v1/auth/password-reset", None, json!({ "email": guest.email })).await.expect(202);
    let reset = sink.mail(&guest.email, "Reset your password").await;
    let link = format!("{PUBLIC_URL}/#/reset-password?token={}.", guest.id);
    check_shape(&reset, &link, delivery_id(&app, "password_reset", &guest.id).await);
    assert!(reset.text.contains("The link works once, until"), "{}", reset.text);
}

#[tokio::test]
async fn a_message_sent_again_keeps_its_message_id() {
    let sink = SmtpSink::start().await;
    let app = email_app().await;
    let _worker = start_email_worker(&app, &sink.url());
    let user = app.new_user("Sari").await;
    let first = sink.mail(&user.email, "Verify").await;

    // As if the worker had crashed after the server took the message and before
    // the outbox recorded it: the row is due again. Only once the worker has
    // recorded the first send, or that record would overwrite this one.
    let delivery = delivery_id(&app, "email_verification", &user.id).await;
    eventually_async("the first send recorded", MAIL_WAIT, async || {
        let state: String = sqlx::query_scalar("SELECT state FROM deliveries WHERE id = $1")
            .bind(delivery)
            .fetch_one(&app.db)
            .await
            .expect("state");
        state == "delivered"
    })
    .await;
    sqlx::query("UPDATE deliveries SET state = 'pending', next_attempt_at = now(), delivered_at = NULL WHERE id = $1")
        .bind(delivery)
        .execute(&app.db)
        .await
        .expect("made due again");
    sqlx::query("SELECT pg_notify('rapat_deliveries', '')").execute(&app.db).await.expect("notify");
    let both = sink.wait_for(&user.email, "the message again", |mails| mails.len() == 2).await;
    assert_eq!(both[1].message_id, first.message_id);
    assert_eq!(both[1].text, first.text, "the same token, derived again");
    assert_eq!(first.message_id, format!("{delivery}@meet.example.test"));
}

#[tokio::test]
async fn emails_owed_while_the_smtp_server_is_down_arrive_when_it_returns_and_none_is_lost() {
    let mut sink = SmtpSink::start().await;
    sink.down();
    let app = email_app().await;
    let _worker = start_email_worker(&app, &sink.url());
    let mut users = Vec::new();
    for name in ["Ani", "Bima", "Citra", "Dewi", "Eka"] {
        users.push(app.new_user(name).await);
    }
    // Every attempt so far met a closed port: retried, not failed.
    eventually_async("every verification email tried and waiting to be retried", MAIL_WAIT, async || {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE kind = 'email_verification' AND state = 'pending' \
             AND attempts >= 1 AND last_error IS NOT NULL",
        )
        .fetch_one(&app.db)
        .await
        .expect("count");
        waiting == 5
    })
    .await;
    assert!(sink.received().is_empty());

    sink.up().await;
    for user in &users {
        let mails = sink.wait_for(&user.email, "the verification email", |mails| !mails.is_empty()).await;
        assert_eq!(mails.len(), 1, "{mails:#?}");
    }
    // The worker records a delivery once the server has accepted it, a moment
    // after the server holds the message.
    eventually_async("every verification email recorded as delivered", MAIL_WAIT, async || {
        let delivered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE kind = 'email_verification' AND state = 'delivered'",
        )
        .fetch_one(&app.db)
        .await
        .expect("count");
        delivered == 5
    })
    .await;
}

#[tokio::test]
async fn an_address_the_server_refuses_fails_at_once_and_a_busy_one_is_retried() {
    let sink = SmtpSink::start().await;
    let app = email_app().await;
    let _worker = start_email_worker(&app, &sink.url());
    let host = app.new_user("Hana").await;
    let room = app.create_room(&host, json!({ "name": "Refusals", "maxUsers": 5 })).await;
    let refused = format!("refused.{}@example.com", Uuid::new_v4().simple());
    let busy = format!("busy.{}@example.com", Uuid::new_v4().simple());
    app.invite(&host, &room, json!({ "emails": [refused, busy] })).await.expect(201);

    let state = async |address: &str| -> (String, i32, String) {
        sqlx::query_as("SELECT state, attempts, coalesce(last_error, '') FROM deliveries WHERE address = $1")
            .bind(address)
            .fetch_optional(&app.db)
            .await
            .expect("query")
            .unwrap_or_default()
    };
    eventually_async("the refused address failed", MAIL_WAIT, async || state(&refused).await.0 == "failed").await;
    let (_, attempts, error) = state(&refused).await;
    assert_eq!(attempts, 1, "a 5xx is not retried");
    assert!(error.contains("550"), "{error}");
    eventually_async("the busy address retried", MAIL_WAIT, async || state(&busy).await.1 >= 2).await;
    let (busy_state, _, error) = state(&busy).await;
    assert_eq!(busy_state, "pending");
    assert!(error.contains("451"), "{error}");
}
