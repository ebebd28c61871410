//! Given/when/then tests of the settings rules, and the parsing of each setting.

use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

const ANA: UserId = UserId::from_uuid(Uuid::from_u128(1));
const BUDI: UserId = UserId::from_uuid(Uuid::from_u128(2));

fn settings() -> TestFramework<UserSettings> {
    TestFramework::with(())
}

fn zone(name: &str) -> Timezone {
    Timezone::parse(name).expect("a known zone")
}

fn update(changes: SettingsChanges) -> SettingsCommand {
    SettingsCommand::Update { user: ANA, changes }
}

fn updated(timezone: Option<Timezone>, reminder: Option<u32>) -> SettingsEvent {
    SettingsEvent::UserSettingsUpdated {
        user_id: ANA,
        timezone,
        locale: None,
        reminder_minutes: reminder.map(|minutes| ReminderMinutes::parse(minutes).expect("in range")),
        notifications: BTreeMap::new(),
    }
}

#[test]
fn defaults_are_utc_english_ten_minutes_and_in_app_and_email_for_every_kind() {
    let effective = UserSettings::default().effective();
    assert_eq!(effective.timezone.as_str(), "UTC");
    assert_eq!(effective.locale.as_str(), "en");
    assert_eq!(effective.reminder_minutes.get(), 10);
    assert_eq!(effective.notifications.len(), NotificationKind::ALL.len());
    assert!(effective.notifications.iter().all(|(_, channels)| *channels == Channels::DEFAULT));
    assert_eq!(Channels::DEFAULT, Channels { in_app: true, email: true, push: false });
}

#[test]
fn an_update_records_only_what_changed() {
    let changes = SettingsChanges {
        timezone: Some(zone("Asia/Jakarta")),
        locale: Some(Locale::english()),
        reminder_minutes: Some(ReminderMinutes::DEFAULT),
        ..SettingsChanges::default()
    };
    settings()
        .given_no_previous_events()
        .when(update(changes))
        .then_expect_events(vec![updated(Some(zone("Asia/Jakarta")), None)]);
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    let changes = SettingsChanges { timezone: Some(zone("Asia/Jakarta")), ..SettingsChanges::default() };
    settings().given(vec![updated(Some(zone("Asia/Jakarta")), None)]).when(update(changes)).then_expect_events(vec![]);
    settings().given_no_previous_events().when(update(SettingsChanges::default())).then_expect_events(vec![]);
}

#[test]
fn notification_channels_change_per_kind() {
    let push_too = Channels { in_app: true, email: true, push: true };
    let mut notifications = BTreeMap::new();
    notifications.insert(NotificationKind::MeetingReminder, push_too);
    notifications.insert(NotificationKind::ContactAdded, Channels::DEFAULT);
    let expected = SettingsEvent::UserSettingsUpdated {
        user_id: ANA,
        timezone: None,
        locale: None,
        reminder_minutes: None,
        notifications: BTreeMap::from([(NotificationKind::MeetingReminder, push_too)]),
    };
    settings()
        .given_no_previous_events()
        .when(update(SettingsChanges { notifications, ..SettingsChanges::default() }))
        .then_expect_events(vec![expected.clone()]);

    let mut state = UserSettings::default();
    state.apply(expected);
    state.apply(updated(None, Some(30)));
    let effective = state.effective();
    assert_eq!(effective.reminder_minutes.get(), 30);
    assert_eq!(effective.channels(NotificationKind::MeetingReminder), push_too, "kept across a later update");
    assert_eq!(effective.channels(NotificationKind::RoomInvitation), Channels::DEFAULT);
}

#[test]
fn an_update_routed_to_another_users_settings_is_refused() {
    settings()
        .given(vec![updated(None, Some(5))])
        .when(SettingsCommand::Update { user: BUDI, changes: SettingsChanges::default() })
        .then_expect_error(SettingsError::OwnerMismatch);
}

#[test]
fn time_zones_are_iana_names() {
    assert_eq!(zone("Asia/Jakarta").as_str(), "Asia/Jakarta");
    assert_eq!(zone(" UTC ").as_str(), "UTC");
    for bad in ["", "Mars/Olympus", "GMT+7 ", "asia jakarta"] {
        assert_eq!(Timezone::parse(bad), Err(SettingsInputError::UnknownTimezone), "{bad:?}");
    }
}

#[test]
fn locales_are_language_tags() {
    assert_eq!(Locale::parse("EN").expect("valid").as_str(), "en");
    assert_eq!(Locale::parse("pt-BR").expect("valid").as_str(), "pt-BR");
    assert_eq!(Locale::parse("zh-Hant-TW").expect("valid").as_str(), "zh-Hant-TW");
    for bad in ["", "e", "english", "en_US", "en-", "en-US-x-y-z", "en-\u{0}"] {
        assert_eq!(Locale::parse(bad), Err(SettingsInputError::BadLocale), "{bad:?}");
    }
}

#[test]
fn reminders_are_at_most_a_day_ahead() {
    assert_eq!(ReminderMinutes::parse(0).map(ReminderMinutes::get), Ok(0));
    assert_eq!(ReminderMinutes::parse(1440).map(ReminderMinutes::get), Ok(1440));
    assert_eq!(ReminderMinutes::parse(1441), Err(SettingsInputError::ReminderOutOfRange { max: 1440 }));
}

#[test]
fn stored_settings_refuse_what_would_not_parse() {
    let bad = serde_json::json!({ "UserSettingsUpdated": { "userId": ANA, "timezone": "Mars/Olympus" } });
    assert!(serde_json::from_value::<SettingsEvent>(bad).is_err());
    let kinds = serde_json::to_value(NotificationKind::ALL).expect("serialises");
    assert_eq!(kinds[0], "room_invitation");
    assert_eq!(kinds[8], "removed_from_room");
}
