//! `/rooms/upcoming` and `/rooms/{roomId}/calendar.ics`.

use chrono::{DateTime, TimeDelta, Utc};
use icalendar::{CalendarDateTime, Component, DatePerhapsTime};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, spawn_app};

fn at(offset: TimeDelta) -> String {
    (Utc::now() + offset).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn upcoming_ids(app: &TestApp, user: &TestUser, query: &str) -> Vec<String> {
    let listed = app.get(&format!("/api/v1/rooms/upcoming{query}"), &user.token).await;
    listed.expect(200);
    listed.data().as_array().expect("a list").iter().map(|room| room["id"].as_str().expect("id").to_string()).collect()
}

#[tokio::test]
async fn upcoming_rooms_are_those_hosted_or_accepted_soonest_first() {
    let app = spawn_app().await;
    let user = app.new_user("Agung").await;
    let other = app.new_user("Bintang").await;
    let room = |name: &str, scheduled: Option<String>| json!({ "name": name, "maxUsers": 5, "scheduledAt": scheduled });
    let in_two_days = app.create_room(&user, room("Two days", Some(at(TimeDelta::days(2))))).await;
    let tomorrow = app.create_room(&user, room("Tomorrow", Some(at(TimeDelta::days(1))))).await;
    let unscheduled = app.create_room(&user, room("Some day", None)).await;
    let ended = app.create_room(&user, room("Ended", Some(at(TimeDelta::hours(5))))).await;
    app.post(&format!("/api/v1/rooms/{ended}/end"), Some(&user.token), json!({})).await.expect(200);
    let accepted = app.create_room(&other, room("Accepted", Some(at(TimeDelta::hours(3))))).await;
    let invitation = app.invite_user(&other, accepted.as_str(), &user).await;
    app.answer_invitation(&user, &invitation, "accept").await.expect(200);
    let pending = app.create_room(&other, room("Pending", Some(at(TimeDelta::hours(4))))).await;
    app.invite_user(&other, &pending, &user).await;
    let declined = app.create_room(&other, room("Declined", Some(at(TimeDelta::hours(4))))).await;
    let invitation = app.invite_user(&other, &declined, &user).await;
    app.answer_invitation(&user, &invitation, "decline").await.expect(200);
    app.create_room(&other, room("Not mine", Some(at(TimeDelta::hours(1))))).await;

    assert_eq!(
        upcoming_ids(&app, &user, "").await,
        [accepted.as_str(), tomorrow.as_str(), in_two_days.as_str(), unscheduled.as_str()]
    );
    let from = at(TimeDelta::hours(12)).replace(':', "%3A");
    assert_eq!(upcoming_ids(&app, &user, &format!("?from={from}")).await, [tomorrow.as_str(), in_two_days.as_str()]);
    let to = at(TimeDelta::hours(36)).replace(':', "%3A");
    assert_eq!(upcoming_ids(&app, &user, &format!("?from={from}&to={to}")).await, [tomorrow.as_str()]);
    assert_eq!(upcoming_ids(&app, &user, &format!("?to={to}")).await, [accepted.as_str(), tomorrow.as_str()]);
    assert_eq!(upcoming_ids(&app, &other, "").await.len(), 4, "the other user hosts four rooms not ended");

    for bad in ["?from=tomorrow", "?to=2031-13-01T00:00:00Z", "?from=2031-05-01", "?from="] {
        app.get(&format!("/api/v1/rooms/upcoming{bad}"), &user.token).await.expect_error(400, "invalid_query");
    }
}

/// The body of `GET /rooms/{room}/calendar.ics`, checked to be an iCalendar file.
async fn calendar_file(app: &TestApp, user: &TestUser, room: &str) -> String {
    let url = format!("{}/api/v1/rooms/{room}/calendar.ics", app.base_url);
    let answer = app.http.get(url).bearer_auth(&user.token).send().await.expect("sent");
    assert_eq!(answer.status().as_u16(), 200);
    let content_type = answer.headers()["content-type"].to_str().expect("ASCII").to_string();
    assert!(content_type.starts_with("text/calendar"), "{content_type}");
    answer.text().await.expect("a body")
}

#[tokio::test]
async fn the_calendar_file_is_one_rfc_5545_event_that_a_parser_reads_back() {
    let app = spawn_app().await;
    let host = app.new_user("Cempaka").await;
    // Characters RFC 5545 escapes, non-ASCII ones and enough length to fold.
    let name = "Review; budget, Q3 \\ plans — kôpi ☕ and a long tail to make the line fold: 0123456789";
    let description = "Agenda:\nfirst, second; third";
    let start = at(TimeDelta::days(30));
    let body = json!({ "name": name, "description": description, "maxUsers": 5, "scheduledAt": start });
    let room = app.create_room(&host, body).await;

    let file = calendar_file(&app, &host, &room).await;

    assert!(file.ends_with("\r\n"), "{file:?}");
    for line in file.split("\r\n") {
        assert!(line.len() <= 75, "a line over 75 octets: {line:?}");
        assert!(!line.contains('\n') && !line.contains('\r'), "a bare line break: {line:?}");
    }
    assert!(file.contains("\r\n "), "the long summary is folded: {file}");
    let calendar: icalendar::Calendar = file.parse().expect("an iCalendar file");
    let events: Vec<&icalendar::Event> = calendar.events().collect();
    assert_eq!(events.len(), 1, "{file}");
    let event = events[0];
    assert_eq!(event.get_uid(), Some(format!("{room}@rapat").as_str()));
    assert_eq!(event.get_summary(), Some(name));
    let start: DateTime<Utc> = start.parse().expect("a time");
    assert_eq!(event.get_start(), Some(DatePerhapsTime::DateTime(CalendarDateTime::Utc(start))));
    assert_eq!(event.get_end(), Some(DatePerhapsTime::DateTime(CalendarDateTime::Utc(start + TimeDelta::hours(1)))));
    assert!(event.get_timestamp().is_some(), "DTSTAMP");
    assert_eq!(event.get_sequence(), Some(0));
    let join_link = event.get_url().expect("URL").to_string();
    assert!(join_link.ends_with(&format!("/#/rooms/{room}")), "{join_link}");
    let text = event.get_description().expect("DESCRIPTION");
    assert!(text.starts_with(description) && text.contains(&join_link), "{text:?}");
    let organizer = event.property_value("ORGANIZER").expect("ORGANIZER");
    assert_eq!(organizer.to_lowercase(), format!("mailto:{}", host.email));
    assert!(file.contains(&format!("DTSTART:{}\r\n", start.format("%Y%m%dT%H%M%SZ"))), "in UTC: {file}");

    // Rescheduled: the same event, a later SEQUENCE, the new time and length.
    let moved = at(TimeDelta::days(31));
    let body = json!({ "scheduledAt": moved, "durationMinutes": 45 });
    app.put(&format!("/api/v1/rooms/{room}"), &host.token, body).await.expect(200);
    let again: icalendar::Calendar = calendar_file(&app, &host, &room).await.parse().expect("an iCalendar file");
    let event = again.events().next().expect("an event");
    assert_eq!(event.get_uid(), Some(format!("{room}@rapat").as_str()));
    assert_eq!(event.get_sequence(), Some(1));
    let moved: DateTime<Utc> = moved.parse().expect("a time");
    assert_eq!(event.get_start(), Some(DatePerhapsTime::DateTime(CalendarDateTime::Utc(moved))));
    assert_eq!(event.get_end(), Some(DatePerhapsTime::DateTime(CalendarDateTime::Utc(moved + TimeDelta::minutes(45)))));
    assert_eq!(event.get_status(), None);

    // Ended before it started: cancelled.
    app.post(&format!("/api/v1/rooms/{room}/end"), Some(&host.token), json!({})).await.expect(200);
    let cancelled: icalendar::Calendar = calendar_file(&app, &host, &room).await.parse().expect("an iCalendar file");
    let event = cancelled.events().next().expect("an event");
    assert_eq!(event.get_status(), Some(icalendar::EventStatus::Cancelled));
}

#[tokio::test]
async fn only_the_host_and_invitees_get_the_calendar_file() {
    let app = spawn_app().await;
    let host = app.new_user("Dharma").await;
    let invitee = app.new_user("Endah").await;
    let stranger = app.new_user("Fajar").await;
    let body = json!({ "name": "Demo", "maxUsers": 5, "scheduledAt": at(TimeDelta::days(3)) });
    let room = app.create_room(&host, body).await;
    let invitation = app.invite_user(&host, &room, &invitee).await;
    let path = format!("/api/v1/rooms/{room}/calendar.ics");

    calendar_file(&app, &invitee, &room).await;
    app.get(&path, &stranger.token).await.expect_error(403, "not_invited");
    app.answer_invitation(&invitee, &invitation, "decline").await.expect(200);
    calendar_file(&app, &invitee, &room).await;
    app.delete(&format!("/api/v1/rooms/{room}/invitations/{invitation}"), &host.token).await.expect(200);
    app.get(&path, &invitee.token).await.expect_error(403, "not_invited");

    let unscheduled = app.create_room(&host, json!({ "name": "Later", "maxUsers": 5 })).await;
    app.get(&format!("/api/v1/rooms/{unscheduled}/calendar.ics"), &host.token).await.expect_error(409, "not_scheduled");
    app.get(&format!("/api/v1/rooms/{}/calendar.ics", Uuid::new_v4()), &host.token)
        .await
        .expect_error(404, "room_not_found");
}
