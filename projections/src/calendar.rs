//! A meeting as an iCalendar (RFC 5545) file: what `GET /rooms/{roomId}/calendar.ics`
//! answers and what an invitation email attaches. One builder for both, so a
//! calendar that imported either updates the same event.

use chrono::{DateTime, TimeDelta, Utc};
use icalendar::{Calendar, Component, EventLike, EventStatus, Property};
use uuid::Uuid;

use crate::queries::RoomRow;

/// How long a meeting with no `durationMinutes` lasts on a calendar.
pub const DEFAULT_DURATION_MINUTES: u32 = 60;

/// Where the browser client opens a room, under the deployment's public URL.
pub fn join_url(public_url: &str, room_id: Uuid) -> String {
    format!("{}/#/rooms/{room_id}", public_url.trim_end_matches('/'))
}

/// What a room's calendar event says.
pub struct Meeting<'a> {
    pub room: &'a RoomRow,
    pub start: DateTime<Utc>,
    pub join_url: String,
    /// The host's address and name, once the accounts read model has them.
    pub organizer: Option<(String, String)>,
}

impl Meeting<'_> {
    /// The file. `icalendar` escapes the text values, folds lines at 75 octets and
    /// ends them with CRLF (RFC 5545 §3.1, §3.3.11).
    pub fn to_ics(&self) -> String {
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
    use crate::queries::RoomStatus;
    use chrono::TimeZone;
    use rapat_domain::ids::{RoomId, UserId};

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
            recording: false,
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
