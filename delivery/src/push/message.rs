//! What a push message says: the JSON the service worker shows (`web/sw.js`),
//! made from a notification delivery. Encrypted, it must fit a push service's
//! 4096-byte limit (RFC 8291 §4), so free text is cut short.

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Longest body, in characters; with the rest the plaintext stays far below the
/// 3,993 bytes a single aes128gcm record of 4,096 can carry.
const MAX_BODY_CHARS: usize = 600;
/// Room and people names are bounded by the domain; this is a second fence.
const MAX_NAME_CHARS: usize = 120;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushMessage {
    pub title: String,
    pub body: String,
    /// Where a click leads: a path of the browser client, resolved by the
    /// service worker against its own origin.
    pub url: String,
    pub notification_id: Option<Uuid>,
    pub kind: String,
}

impl PushMessage {
    pub fn new(kind: &str, notification_id: Option<Uuid>, payload: &Value) -> Self {
        let name = |value: Option<&Value>, fallback: &str| {
            let text = value.and_then(Value::as_str).unwrap_or(fallback);
            text.chars().take(MAX_NAME_CHARS).collect::<String>()
        };
        let room = name(payload.pointer("/room/name"), "a meeting");
        let actor = name(payload.pointer("/actor/name"), "Someone");
        let when = payload.get("scheduledAt").and_then(Value::as_str).map(|at| format!(" ({at})")).unwrap_or_default();
        let late = payload.get("late").and_then(Value::as_bool).unwrap_or(false);
        let (title, body) = match kind {
            "room_invitation" => ("Invitation".to_owned(), format!("{actor} invited you to {room}{when}")),
            "invitation_accepted" => {
                ("Invitation accepted".to_owned(), format!("{actor} accepted your invitation to {room}"))
            }
            "invitation_declined" => {
                ("Invitation declined".to_owned(), format!("{actor} declined your invitation to {room}"))
            }
            "meeting_reminder" => {
                let late = if late { " (sent late)" } else { "" };
                ("Meeting reminder".to_owned(), format!("{room} starts soon{when}{late}"))
            }
            "meeting_started" => ("Meeting started".to_owned(), format!("{room} has started")),
            "meeting_rescheduled" => ("Meeting moved".to_owned(), format!("{room} moved{when}")),
            "meeting_cancelled" => ("Meeting cancelled".to_owned(), format!("{room} was cancelled")),
            "contact_added" => ("New contact".to_owned(), format!("{actor} added you as a contact")),
            "removed_from_room" => ("Removed from a meeting".to_owned(), format!("You were removed from {room}")),
            other => ("rapat".to_owned(), other.replace('_', " ")),
        };
        let url = match payload.pointer("/room/id").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok()) {
            Some(room) if kind != "removed_from_room" && kind != "meeting_cancelled" => format!("/#/rooms/{room}"),
            _ => "/".to_owned(),
        };
        Self {
            title,
            body: body.chars().take(MAX_BODY_CHARS).collect(),
            url,
            notification_id,
            kind: kind.chars().take(64).collect(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The `Topic` header (RFC 8030 §5.4): a repeat of the same notification
    /// replaces one the push service still holds rather than adding a second.
    /// At most 32 characters of the base64url alphabet: the id's 32 hex digits.
    pub fn topic(&self) -> Option<String> {
        self.notification_id.map(|id| id.simple().to_string())
    }

    /// The `Urgency` header (RFC 8030 §5.3).
    pub fn urgency(&self) -> &'static str {
        match self.kind.as_str() {
            "meeting_reminder" | "meeting_started" => "high",
            _ => "normal",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_invitation_names_the_host_and_the_room_and_leads_to_it() {
        let room = Uuid::from_u128(7);
        let id = Uuid::from_u128(9);
        let payload =
            json!({ "room": { "id": room, "name": "Standup" }, "actor": { "id": Uuid::nil(), "name": "Ana Putri" } });
        let message = PushMessage::new("room_invitation", Some(id), &payload);
        assert_eq!(message.title, "Invitation");
        assert_eq!(message.body, "Ana Putri invited you to Standup");
        assert_eq!(message.url, format!("/#/rooms/{room}"));
        assert_eq!(message.topic().expect("a topic").len(), 32);
        assert_eq!(message.urgency(), "normal");
    }

    #[test]
    fn the_message_stays_small_whatever_the_payload() {
        let huge = "x".repeat(100_000);
        let payload = json!({ "room": { "id": "not a uuid", "name": huge }, "actor": { "name": huge } });
        let message = PushMessage::new(&huge, Some(Uuid::nil()), &payload);
        assert!(message.to_bytes().len() < 3000, "{}", message.to_bytes().len());
        assert_eq!(message.url, "/");
    }
}
