//! A user's settings (SPEC §6): time zone, locale, how long before a meeting the
//! reminder goes out, and where each kind of notification goes. One aggregate per
//! user, its id the user's id; a user who never changed anything has no events
//! and the defaults ([`UserSettings::effective`]).
//!
//! Settings are an aggregate of their own rather than part of the account: they
//! change often, are read by the notification pipeline and not by login, and
//! their events stay out of the account's history (and its snapshots).

mod error;
mod event;
#[cfg(test)]
mod tests;
mod types;

use std::collections::BTreeMap;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

pub use error::{SettingsError, SettingsInputError};
pub use event::SettingsEvent;
pub use types::{Channels, Locale, NotificationKind, ReminderMinutes, Timezone};

use crate::ids::UserId;

/// Settings to change; `None` (or a kind left out) keeps what is set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SettingsChanges {
    pub timezone: Option<Timezone>,
    pub locale: Option<Locale>,
    pub reminder_minutes: Option<ReminderMinutes>,
    pub notifications: BTreeMap<NotificationKind, Channels>,
}

#[derive(Clone, Debug)]
pub enum SettingsCommand {
    Update { user: UserId, changes: SettingsChanges },
}

/// A user's settings with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveSettings {
    pub timezone: Timezone,
    pub locale: Locale,
    pub reminder_minutes: ReminderMinutes,
    /// Every kind, in [`NotificationKind::ALL`]'s order.
    pub notifications: Vec<(NotificationKind, Channels)>,
}

impl EffectiveSettings {
    /// Where notifications of `kind` go.
    pub fn channels(&self, kind: NotificationKind) -> Channels {
        self.notifications.iter().find(|(k, _)| *k == kind).map_or(Channels::DEFAULT, |(_, channels)| *channels)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSettings {
    owner: Option<UserId>,
    timezone: Option<Timezone>,
    locale: Option<Locale>,
    reminder_minutes: Option<ReminderMinutes>,
    /// A `BTreeMap` so that snapshots serialise the same way every time.
    notifications: BTreeMap<NotificationKind, Channels>,
}

impl UserSettings {
    pub fn effective(&self) -> EffectiveSettings {
        EffectiveSettings {
            timezone: self.timezone.clone().unwrap_or_else(Timezone::utc),
            locale: self.locale.clone().unwrap_or_else(Locale::english),
            reminder_minutes: self.reminder_minutes.unwrap_or(ReminderMinutes::DEFAULT),
            notifications: NotificationKind::ALL
                .iter()
                .map(|kind| (*kind, self.notifications.get(kind).copied().unwrap_or(Channels::DEFAULT)))
                .collect(),
        }
    }

    fn decide(&self, command: SettingsCommand) -> Result<Option<SettingsEvent>, SettingsError> {
        let SettingsCommand::Update { user, changes } = command;
        if self.owner.is_some_and(|owner| owner != user) {
            return Err(SettingsError::OwnerMismatch);
        }
        let current = self.effective();
        let timezone = changes.timezone.filter(|zone| *zone != current.timezone);
        let locale = changes.locale.filter(|locale| *locale != current.locale);
        let reminder_minutes = changes.reminder_minutes.filter(|minutes| *minutes != current.reminder_minutes);
        let notifications: BTreeMap<_, _> =
            changes.notifications.into_iter().filter(|(kind, channels)| current.channels(*kind) != *channels).collect();
        let unchanged =
            timezone.is_none() && locale.is_none() && reminder_minutes.is_none() && notifications.is_empty();
        if unchanged {
            return Ok(None);
        }
        Ok(Some(SettingsEvent::UserSettingsUpdated {
            user_id: user,
            timezone,
            locale,
            reminder_minutes,
            notifications,
        }))
    }
}

impl Aggregate for UserSettings {
    const TYPE: &'static str = "settings";
    type Command = SettingsCommand;
    type Event = SettingsEvent;
    type Error = SettingsError;
    type Services = ();

    async fn handle(&mut self, command: SettingsCommand, _: &(), sink: &EventSink<Self>) -> Result<(), SettingsError> {
        if let Some(event) = self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: SettingsEvent) {
        let SettingsEvent::UserSettingsUpdated { user_id, timezone, locale, reminder_minutes, notifications } = event;
        self.owner = Some(user_id);
        self.timezone = timezone.or(self.timezone.take());
        self.locale = locale.or(self.locale.take());
        self.reminder_minutes = reminder_minutes.or(self.reminder_minutes);
        self.notifications.extend(notifications);
    }
}
