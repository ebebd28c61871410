//! Meetings on a calendar (SPEC §6): the caller's upcoming rooms, and a room as an
//! iCalendar (RFC 5545) file for calendar applications.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use icalendar::{Calendar, Component, EventLike, EventStatus, Property};
use rapat_domain::ids::RoomId;
use rapat_projections::queries;
use rapat_projections::queries::RoomRow;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::response::{self, Data, Failure};
use crate::routes::invitations::caller_row;
use crate::routes::rooms::views::RoomView;
use crate::state::AppState;

/// Most rooms `GET /rooms/upcoming` answers with.
pub const MAX_UPCOMING: u32 = 500;

/// How long a meeting with no `durationMinutes` lasts on a calendar.
const DEFAULT_DURATION_MINUTES: u32 = 60;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upcoming_rooms)).routes(routes!(room_calendar))
}

/// `?from=&to=` of the upcoming rooms.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UpcomingQuery {
    /// Only rooms scheduled at or after this RFC 3339 time.
    #[param(format = DateTime)]
    from: Option<String>,
    /// Only rooms scheduled at or before this RFC 3339 time.
    #[param(format = DateTime)]
    to: Option<String>,
}

fn parse_time(name: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text).map(|time| time.with_timezone(&Utc)).map_err(|_| {
        ApiError::bad_request("invalid_query", format!("{name} must be an RFC 3339 time such as 2026-05-01T09:00:00Z"))
    })
}

/// The rooms not ended that the caller hosts or has accepted an invitation to,
/// by `scheduledAt`, unscheduled ones last. With `from` or `to`, only scheduled
/// rooms within them (a `from` after `to` finds none). At most 500.
#[utoipa::path(
    get,
    path = "/rooms/upcoming",
    tag = "rooms",
    security(("bearer" = [])),
    params(UpcomingQuery),
    responses(
        (status = 200, description = "`data` is the rooms, soonest first", body = Data<Vec<RoomView>>),
        (status = 400, description = "`from` or `to` is not an RFC 3339 time", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
    )
)]
async fn upcoming_rooms(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<UpcomingQuery>,
) -> Result<Response, ApiError> {
    let from = query.from.as_deref().map(|text| parse_time("from", text)).transpose()?;
    let to = query.to.as_deref().map(|text| parse_time("to", text)).transpose()?;
    let rows = queries::rooms::upcoming_for(&state.db, auth.user_id, from, to, MAX_UPCOMING).await?;
    Ok(response::ok(rows.into_iter().map(RoomView::from).collect::<Vec<_>>()))
}

/// The room as an iCalendar file with one `VEVENT`: its time (UTC), duration,
/// name, join link, organizer (the host) and a `UID` that stays the same, its
/// `SEQUENCE` growing with each reschedule, so a calendar that imported it before
/// updates the event in place. For the host and anyone holding an invitation to
/// the room that was not revoked.
#[utoipa::path(
    get,
    path = "/rooms/{roomId}/calendar.ics",
    tag = "rooms",
    security(("bearer" = [])),
    params(("roomId" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "An iCalendar (RFC 5545) file", body = String, content_type = "text/calendar"),
        (status = 400, description = "the id is not a UUID", body = Failure),
        (status = 401, description = "missing, invalid, expired or revoked token", body = Failure),
        (status = 403, description = "the caller neither hosts the room nor holds an invitation to it", body = Failure),
        (status = 404, description = "no such room", body = Failure),
        (status = 409, description = "the room has no `scheduledAt`: it is not on any calendar", body = Failure),
    )
)]
async fn room_calendar(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    ApiPath(room_id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let room = queries::rooms::by_id(&state.db, RoomId::from_uuid(room_id))
        .await?
        .ok_or_else(|| ApiError::not_found("room_not_found", "the room does not exist"))?;
    if room.host_id != auth.user_id {
        let caller = caller_row(&state, &auth).await?;
        if !queries::invitations::holds_unrevoked(&state.db, room.id, auth.user_id, &caller.email).await? {
            return Err(ApiError::forbidden("not_invited", "only the host and the invitees see the room's calendar"));
        }
    }
    let Some(start) = room.scheduled_at else {
        return Err(ApiError::conflict("not_scheduled", "the room has no scheduled time"));
    };
    let organizer = queries::users::by_id(&state.db, room.host_id).await?;
    let organizer = organizer.map(|host| (host.email, format!("{} {}", host.first_name, host.last_name)));
    let meeting = Meeting { room: &room, start, join_url: join_url(&headers, room_id), organizer };
    let mut answer = meeting.to_ics().into_response();
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/calendar; charset=utf-8"));
    let disposition = format!("attachment; filename=\"{room_id}.ics\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        answer.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(answer)
}

/// Where the browser client opens the room: the origin the caller reached this
/// server at (the client is served by the gateway), then the client's room route.
fn join_url(headers: &HeaderMap, room_id: Uuid) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'#'))
        .unwrap_or("localhost");
    let scheme = match headers.get("x-forwarded-proto").and_then(|value| value.to_str().ok()) {
        Some("https") => "https",
        Some("http") => "http",
        _ if host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]") => "http",
        _ => "https",
    };
    format!("{scheme}://{host}/#/rooms/{room_id}")
}

/// What a room's calendar event says.
struct Meeting<'a> {
    room: &'a RoomRow,
    start: DateTime<Utc>,
    join_url: String,
    /// The host's address and name, once the accounts read model has them.
    organizer: Option<(String, String)>,
}

impl Meeting<'_> {
    /// The file. `icalendar` escapes the text values, folds lines at 75 octets and
    /// ends them with CRLF (RFC 5545 §3.1, §3.3.11).
    fn to_ics(&self) -> String {
        let minutes = self.room.duration_minutes.map_or(i64::from(DEFAULT_DURATION_MINUTES), i64::from);
        let end = self.start + TimeDelta::minutes(minutes);
        // Grows with each reschedule, so a calendar replaces what it imported.
        let sequence = u32::try_from(self.room.schedule_sequence).unwrap_or(u32::MAX);
        let mut description = format!("Join the meeting: {}", self.join_url);
        if !self.room.description.is_empty() {
            description = format!("{}\n\n{description}", self.room.description);
        }
        let mut event = icalendar::Event::new();
        event
            // Stable across reschedules and renames: calendars update the event
            // they imported instead of adding a second one.
            .uid(&format!("{}@rapat", self.room.id))
            .timestamp(Utc::now())
            .starts(self.start)
            .ends(end)
            .summary(&self.room.name)
            .description(&description)
            .url(&self.join_url)
            .sequence(sequence);
        if self.room.cancelled_at.is_some() {
            // Ended before it started: calendars that imported it strike it out.
            event.status(EventStatus::Cancelled);
        }
        if let Some((email, name)) = &self.organizer {
            let mut organizer = Property::new("ORGANIZER", format!("mailto:{email}"));
            // A parameter value may not hold a double quote (RFC 5545 §3.1).
            organizer.add_parameter("CN", name.trim().replace('"', "'").as_str());
            event.append_property(organizer);
        }
        let mut calendar = Calendar::empty();
        for (name, value) in
            [("VERSION", "2.0"), ("PRODID", "-//rapat//meetings//EN"), ("CALSCALE", "GREGORIAN"), ("METHOD", "PUBLISH")]
        {
            calendar.append_property(Property::new(name, value));
        }
        calendar.push(event.done());
        calendar.done().to_string()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rapat_domain::ids::UserId;
    use rapat_projections::queries::RoomStatus;

    use super::*;

    fn room(name: &str, description: &str) -> RoomRow {
        let created = Utc.with_ymd_and_hms(2031, 4, 1, 8, 0, 0).unwrap();
        RoomRow {
            id: RoomId::from_uuid(Uuid::from_u128(7)),
            host_id: UserId::from_uuid(Uuid::from_u128(1)),
            name: name.to_owned(),
            description: description.to_owned(),
            has_password: false,
            max_users: 5,
            scheduled_at: None,
            status: RoomStatus::Active,
            participant_count: 0,
            created_at: created,
            updated_at: created,
            ended_at: None,
            duration_minutes: None,
            schedule_sequence: 0,
            started_at: None,
            cancelled_at: None,
        }
    }

    #[test]
    fn the_event_is_escaped_folded_and_in_utc() {
        let mut room = room("Plan; budget, Q3 \\ ☕", &"A long agenda line, with commas; ".repeat(8));
        room.duration_minutes = Some(90);
        room.schedule_sequence = 2;
        let start = Utc.with_ymd_and_hms(2031, 5, 1, 9, 30, 0).unwrap();
        let meeting = Meeting {
            room: &room,
            start,
            join_url: "https://meet.example.com/#/rooms/00000000-0000-0000-0000-000000000007".to_owned(),
            organizer: Some(("hana@example.com".to_owned(), "Hana \"H\" Tester".to_owned())),
        };
        let file = meeting.to_ics();

        assert!(file.ends_with("\r\n"));
        assert!(file.split("\r\n").all(|line| line.len() <= 75 && !line.contains('\n')), "{file}");
        assert!(file.contains("SUMMARY:Plan\\; budget\\, Q3 \\\\ ☕\r\n"), "{file}");
        assert!(file.contains("DTSTART:20310501T093000Z\r\n"), "{file}");
        assert!(file.contains("DTEND:20310501T110000Z\r\n"), "{file}");
        assert!(file.contains("SEQUENCE:2\r\n"), "{file}");
        assert!(file.contains("UID:00000000-0000-0000-0000-000000000007@rapat\r\n"), "{file}");
        assert!(file.contains("ORGANIZER;CN=Hana 'H' Tester:mailto:hana@example.com\r\n"), "{file}");
        let calendar: icalendar::Calendar = file.parse().expect("parses");
        let event = calendar.events().next().expect("an event");
        assert_eq!(event.get_description().map(|text| text.starts_with(&room.description)), Some(true));
        assert_eq!(file.matches("PRODID:").count(), 1, "{file}");
        assert!(file.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//rapat//meetings//EN\r\n"), "{file}");
    }

    #[test]
    fn without_a_duration_a_meeting_lasts_an_hour() {
        let room = room("Standup", "");
        let start = Utc.with_ymd_and_hms(2031, 5, 1, 23, 30, 0).unwrap();
        let meeting =
            Meeting { room: &room, start, join_url: "http://localhost/#/rooms/x".to_owned(), organizer: None };
        let file = meeting.to_ics();
        assert!(file.contains("DTEND:20310502T003000Z\r\n"), "{file}");
        assert!(file.contains("DESCRIPTION:Join the meeting: http://localhost/#/rooms/x\r\n"), "{file}");
        assert!(!file.contains("ORGANIZER"), "{file}");
    }
}
