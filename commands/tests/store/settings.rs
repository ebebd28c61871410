//! A user's settings through the command bus on a real stream: an update stores
//! what changed, the same update again stores nothing, and a second process reads
//! the settings back with the defaults filled in.

use rapat_commands::{CommandBus, CommandMetadata};
use rapat_domain::ids::UserId;
use rapat_domain::settings::{ReminderMinutes, SettingsChanges, SettingsCommand, Timezone, UserSettings};

use crate::support::TestStore;

#[tokio::test]
async fn an_update_is_stored_once_and_read_back_with_the_defaults() {
    let test = TestStore::new().await;
    let bus = CommandBus::new(test.open::<UserSettings>().await, ());
    let user = UserId::new_random();
    let id = user.to_string();
    let changes = SettingsChanges {
        timezone: Some(Timezone::parse("Asia/Jakarta").expect("a zone")),
        reminder_minutes: Some(ReminderMinutes::parse(30).expect("in range")),
        ..SettingsChanges::default()
    };
    let update = SettingsCommand::Update { user, changes };
    let first = bus.execute(&id, update.clone(), CommandMetadata::by(id.clone())).await.expect("updated");
    assert_eq!(first.events.len(), 1);
    let again = bus.execute(&id, update, CommandMetadata::by(id.clone())).await.expect("updated again");
    assert!(again.events.is_empty(), "the same settings again store nothing");

    let loaded = test.open::<UserSettings>().await.load(&id).await.expect("loads");
    assert_eq!(loaded.state.version, 1);
    let effective = loaded.state.aggregate.effective();
    assert_eq!(effective.timezone.as_str(), "Asia/Jakarta");
    assert_eq!(effective.reminder_minutes.get(), 30);
    assert_eq!(effective.locale.as_str(), "en", "a default, never set");
}
