//! The parsed values a room is made of. Each exists only if it is valid, so the
//! aggregate and everything downstream can take them as they are.
//!
//! `Deserialize` goes through `parse` too (`serde(try_from)`): a value read back from
//! an event, a snapshot or a request body obeys the same rules as one built in code.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::RoomInputError;
use crate::text::{TextError, TextRules, Timestamp, parse_text};

/// A room's display name: 1 to 100 characters once trimmed, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

impl RoomName {
    pub const MAX_CHARS: usize = 100;
    pub const RULES: TextRules = TextRules { may_be_empty: false, max_chars: Self::MAX_CHARS, multiline: false };

    pub fn parse(raw: String) -> Result<Self, RoomInputError> {
        parse_text(&raw, Self::RULES).map(Self).map_err(|error| match error {
            TextError::Empty => RoomInputError::NameEmpty,
            TextError::TooLong { max } => RoomInputError::NameTooLong { max },
            TextError::ControlCharacter => RoomInputError::NameHasControlCharacters,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomName {
    type Error = RoomInputError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<RoomName> for String {
    fn from(name: RoomName) -> Self {
        name.0
    }
}

/// Free text about a room: up to 1000 characters, possibly empty. Line breaks and
/// tabs are allowed here, unlike in a name, because a description is prose; no other
/// control character is.
///
/// Read back from an event, a description is cleaned rather than refused: builds
/// before the control-character rule stored some, and refusing them would make
/// those rooms impossible to load (and so to change or end).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct RoomDescription(String);

impl<'de> Deserialize<'de> for RoomDescription {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = String::deserialize(deserializer)?;
        let prose = |c: &char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
        Self::parse(stored.chars().filter(prose).collect()).map_err(serde::de::Error::custom)
    }
}

impl RoomDescription {
    pub const MAX_CHARS: usize = 1000;
    pub const RULES: TextRules = TextRules { may_be_empty: true, max_chars: Self::MAX_CHARS, multiline: true };

    pub fn parse(raw: String) -> Result<Self, RoomInputError> {
        parse_text(&raw, Self::RULES).map(Self).map_err(|error| match error {
            TextError::TooLong { max } => RoomInputError::DescriptionTooLong { max },
            // `Empty` cannot happen: a description may be empty.
            TextError::ControlCharacter | TextError::Empty => RoomInputError::DescriptionHasControlCharacters,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomDescription {
    type Error = RoomInputError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<RoomDescription> for String {
    fn from(description: RoomDescription) -> Self {
        description.0
    }
}

/// How many participants a room admits at once: 1 to [`MaxUsers::LIMIT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct MaxUsers(u32);

impl MaxUsers {
    /// What one SFU node can forward for a single room without degrading everyone.
    pub const LIMIT: u32 = 500;

    pub fn parse(n: u32) -> Result<Self, RoomInputError> {
        if (1..=Self::LIMIT).contains(&n) {
            Ok(Self(n))
        } else {
            Err(RoomInputError::MaxUsersOutOfRange { max: Self::LIMIT })
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for MaxUsers {
    /// Only the not-yet-created room (the aggregate's `Default`) uses this; every real
    /// room's limit comes from its `RoomCreated`.
    fn default() -> Self {
        Self(Self::LIMIT)
    }
}

impl TryFrom<u32> for MaxUsers {
    type Error = RoomInputError;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::parse(n)
    }
}

impl From<MaxUsers> for u32 {
    fn from(max: MaxUsers) -> Self {
        max.0
    }
}

/// How long a scheduled meeting is planned to last: 1 to 1440 minutes (a day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct DurationMinutes(u16);

impl DurationMinutes {
    pub const MAX: u16 = 1440;

    pub fn parse(minutes: u16) -> Result<Self, RoomInputError> {
        if (1..=Self::MAX).contains(&minutes) {
            Ok(Self(minutes))
        } else {
            Err(RoomInputError::DurationOutOfRange { max: Self::MAX })
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for DurationMinutes {
    type Error = RoomInputError;

    fn try_from(minutes: u16) -> Result<Self, Self::Error> {
        Self::parse(minutes)
    }
}

impl From<DurationMinutes> for u16 {
    fn from(minutes: DurationMinutes) -> Self {
        minutes.0
    }
}

/// A moment a meeting may be scheduled for, as a request asks it: not in the past
/// and at most [`MeetingStart::MAX_AHEAD_DAYS`] ahead of `now`. The clock is the
/// caller's (the domain reads none); a stored event is not checked again, since
/// its moment was in the future when it was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeetingStart(Timestamp);

impl MeetingStart {
    /// A year, leap or not.
    pub const MAX_AHEAD_DAYS: i64 = 366;
    /// How far in the past a requested start may lie and still count as "now": a
    /// form filled in a minute ago is not refused for the clock having moved on.
    pub const GRACE_SECONDS: i64 = 60;

    pub fn parse(time: DateTime<Utc>, now: DateTime<Utc>) -> Result<Self, RoomInputError> {
        if time < now - chrono::Duration::seconds(Self::GRACE_SECONDS) {
            return Err(RoomInputError::ScheduledInThePast);
        }
        if time > now + chrono::Duration::days(Self::MAX_AHEAD_DAYS) {
            return Err(RoomInputError::ScheduledTooFarAhead { days: Self::MAX_AHEAD_DAYS });
        }
        Timestamp::parse(time).map(Self).map_err(|_| RoomInputError::ScheduledAtOutOfRange)
    }

    pub fn get(self) -> Timestamp {
        self.0
    }
}

/// What a settings update does to a room's password.
#[derive(Clone, Debug)]
pub enum PasswordChange {
    Set(crate::credentials::Password),
    Clear,
}

/// One participant's media state, as the room knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantState {
    pub audio_muted: bool,
    pub video_on: bool,
    pub screen_sharing: bool,
}

impl Default for ParticipantState {
    /// How someone arrives: microphone on, camera off, nothing shared. The camera
    /// starts off so nobody is on video before they choose to be.
    fn default() -> Self {
        Self { audio_muted: false, video_on: false, screen_sharing: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: std::fmt::Debug>(input: Result<T, RoomInputError>, expect: Result<&str, RoomInputError>) {
        let got = input.map(|value| format!("{value:?}"));
        assert_eq!(got, expect.map(str::to_owned));
    }

    #[test]
    fn room_names() {
        check(RoomName::parse("  Daily standup ".into()), Ok(r#"RoomName("Daily standup")"#));
        check(RoomName::parse("   ".into()), Err(RoomInputError::NameEmpty));
        check(RoomName::parse(String::new()), Err(RoomInputError::NameEmpty));
        check(RoomName::parse("a\u{7}b".into()), Err(RoomInputError::NameHasControlCharacters));
        check(RoomName::parse("line\nbreak".into()), Err(RoomInputError::NameHasControlCharacters));
        check(RoomName::parse("é".repeat(100)).map(|_| ()), Ok("()"));
        check(RoomName::parse("x".repeat(101)), Err(RoomInputError::NameTooLong { max: 100 }));
    }

    #[test]
    fn room_descriptions() {
        check(RoomDescription::parse(String::new()), Ok(r#"RoomDescription("")"#));
        check(RoomDescription::parse("Agenda:\n- one".into()), Ok(r#"RoomDescription("Agenda:\n- one")"#));
        check(RoomDescription::parse("x".repeat(1000)).map(|_| ()), Ok("()"));
        check(RoomDescription::parse("x".repeat(1001)), Err(RoomInputError::DescriptionTooLong { max: 1000 }));
        check(RoomDescription::parse("a\u{0}b".into()), Err(RoomInputError::DescriptionHasControlCharacters));
        check(RoomDescription::parse("\u{1b}[2J".into()), Err(RoomInputError::DescriptionHasControlCharacters));
    }

    #[test]
    fn max_users() {
        check(MaxUsers::parse(0), Err(RoomInputError::MaxUsersOutOfRange { max: 500 }));
        check(MaxUsers::parse(1), Ok("MaxUsers(1)"));
        check(MaxUsers::parse(500), Ok("MaxUsers(500)"));
        check(MaxUsers::parse(501), Err(RoomInputError::MaxUsersOutOfRange { max: 500 }));
    }

    #[test]
    fn durations() {
        check(DurationMinutes::parse(0), Err(RoomInputError::DurationOutOfRange { max: 1440 }));
        check(DurationMinutes::parse(1), Ok("DurationMinutes(1)"));
        check(DurationMinutes::parse(1440), Ok("DurationMinutes(1440)"));
        check(DurationMinutes::parse(1441), Err(RoomInputError::DurationOutOfRange { max: 1440 }));
        assert!(serde_json::from_str::<DurationMinutes>("0").is_err());
    }

    #[test]
    fn meeting_starts_lie_between_now_and_a_year_ahead() {
        use chrono::{Duration, TimeZone};
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        assert!(MeetingStart::parse(now + Duration::hours(1), now).is_ok());
        assert!(MeetingStart::parse(now - Duration::seconds(30), now).is_ok(), "within the grace");
        check(MeetingStart::parse(now - Duration::minutes(5), now), Err(RoomInputError::ScheduledInThePast));
        assert!(MeetingStart::parse(now + Duration::days(366), now).is_ok());
        check(
            MeetingStart::parse(now + Duration::days(367), now),
            Err(RoomInputError::ScheduledTooFarAhead { days: 366 }),
        );
    }

    #[test]
    fn deserialising_parses() {
        check(
            serde_json::from_str::<RoomName>(r#"" Team ""#).map_err(|_| RoomInputError::NameEmpty),
            Ok(r#"RoomName("Team")"#),
        );
        assert!(serde_json::from_str::<RoomName>(r#""   ""#).is_err());
        assert!(serde_json::from_str::<MaxUsers>("0").is_err());
        assert!(serde_json::from_str::<MaxUsers>("12").is_ok());
        // Stored by an older build: cleaned on load, not refused.
        check(
            serde_json::from_str::<RoomDescription>(r#""a\u0000b\nc""#).map_err(|_| RoomInputError::NameEmpty),
            Ok(r#"RoomDescription("ab\nc")"#),
        );
    }
}
