//! The parsed parts of a user's settings.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::SettingsInputError;

/// An IANA time zone name (`Asia/Jakarta`, `UTC`), as the tz database knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timezone(String);

impl Timezone {
    pub fn parse(raw: &str) -> Result<Self, SettingsInputError> {
        let zone = chrono_tz::Tz::from_str(raw.trim()).map_err(|_| SettingsInputError::UnknownTimezone)?;
        Ok(Self(zone.name().to_owned()))
    }

    pub fn utc() -> Self {
        Self("UTC".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Timezone {
    type Error = SettingsInputError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Timezone> for String {
    fn from(zone: Timezone) -> Self {
        zone.0
    }
}

/// A language tag in the shape of BCP 47 (`en`, `id`, `pt-BR`, `zh-Hant-TW`): a
/// language of 2–3 letters, then up to three subtags of 2–8 letters or digits. Only
/// the shape is checked: the browser client decides what it can show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Locale(String);

impl Locale {
    pub const MAX_CHARS: usize = 35;

    pub fn parse(raw: &str) -> Result<Self, SettingsInputError> {
        let raw = raw.trim();
        let mut parts = raw.split('-');
        let language = parts.next().unwrap_or_default();
        let subtags: Vec<&str> = parts.collect();
        let language_ok = (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_alphabetic());
        let subtags_ok = subtags.len() <= 3
            && subtags.iter().all(|tag| (2..=8).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !language_ok || !subtags_ok || raw.len() > Self::MAX_CHARS {
            return Err(SettingsInputError::BadLocale);
        }
        let mut tag = language.to_ascii_lowercase();
        for subtag in subtags {
            tag.push('-');
            tag.push_str(subtag);
        }
        Ok(Self(tag))
    }

    pub fn english() -> Self {
        Self("en".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Locale {
    type Error = SettingsInputError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Locale> for String {
    fn from(locale: Locale) -> Self {
        locale.0
    }
}

/// How long before a scheduled meeting its reminder goes out: 0 (at the start) to
/// 1,440 minutes (a day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ReminderMinutes(u32);

impl ReminderMinutes {
    pub const MAX: u32 = 1440;
    pub const DEFAULT: Self = Self(10);

    pub fn parse(minutes: u32) -> Result<Self, SettingsInputError> {
        if minutes > Self::MAX {
            return Err(SettingsInputError::ReminderOutOfRange { max: Self::MAX });
        }
        Ok(Self(minutes))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for ReminderMinutes {
    type Error = SettingsInputError;

    fn try_from(minutes: u32) -> Result<Self, Self::Error> {
        Self::parse(minutes)
    }
}

impl From<ReminderMinutes> for u32 {
    fn from(minutes: ReminderMinutes) -> Self {
        minutes.0
    }
}

/// What a notification is about (SPEC §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    RoomInvitation,
    InvitationAccepted,
    InvitationDeclined,
    MeetingReminder,
    MeetingStarted,
    MeetingRescheduled,
    MeetingCancelled,
    ContactAdded,
    RemovedFromRoom,
}

impl NotificationKind {
    pub const ALL: [Self; 9] = [
        Self::RoomInvitation,
        Self::InvitationAccepted,
        Self::InvitationDeclined,
        Self::MeetingReminder,
        Self::MeetingStarted,
        Self::MeetingRescheduled,
        Self::MeetingCancelled,
        Self::ContactAdded,
        Self::RemovedFromRoom,
    ];
}

/// Where one kind of notification goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Channels {
    pub in_app: bool,
    pub email: bool,
    pub push: bool,
}

impl Channels {
    /// In the app and by email; push only once the user turns it on (a browser
    /// asks for permission first).
    pub const DEFAULT: Self = Self { in_app: true, email: true, push: false };
}
