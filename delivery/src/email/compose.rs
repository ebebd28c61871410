//! What each email says: its subject and body, as plain text and as HTML, from
//! a delivery's kind and payload. Pure: the links' base, the token and the
//! address come from the caller (`super::EmailSender`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// What a message needs besides its delivery: where links point, the token of
/// a verification or reset email, and whether the recipient has an account.
pub struct Context<'a> {
    /// `RAPAT_PUBLIC_URL`, without a trailing slash.
    pub public_url: &'a str,
    /// The token of an `email_verification` or `password_reset` email.
    pub token: Option<&'a str>,
    /// Set for an invitation to an address that has no account: its link leads
    /// to sign-up first.
    pub invited_address: Option<&'a str>,
}

/// A message's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("no email is written for deliveries of kind {0:?}")]
    UnknownKind(String),
    #[error("the {kind} payload has no {field}")]
    Missing { kind: String, field: &'static str },
}

/// One paragraph of a message: words, or a link with its label.
enum Part {
    Text(String),
    Link { label: String, url: String },
}

/// The message for `kind` (a notification kind of SPEC §6, or `email_verification`
/// / `password_reset`).
pub fn compose(kind: &str, payload: &Value, context: &Context<'_>) -> Result<Letter, ComposeError> {
    let field = |field: &'static str| ComposeError::Missing { kind: kind.to_owned(), field };
    let room_name = || payload.pointer("/room/name").and_then(Value::as_str).unwrap_or("a meeting").to_owned();
    let room_link = || {
        let id = payload.pointer("/room/id").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok());
        id.map(|id| format!("{}/#/rooms/{id}", context.public_url)).ok_or_else(|| field("room.id"))
    };
    let actor = || payload.pointer("/actor/name").and_then(Value::as_str).unwrap_or("Someone").to_owned();
    let when = |pointer: &str| payload.pointer(pointer).and_then(Value::as_str).map(time);
    let token_link = |route: &str| {
        let token = context.token.ok_or_else(|| field("token"))?;
        Ok::<_, ComposeError>(format!("{}/#/{route}?token={token}", context.public_url))
    };
    let (subject, parts) = match kind {
        "room_invitation" => {
            let mut parts = vec![Part::Text(format!("{} invited you to the meeting \"{}\".", actor(), room_name()))];
            parts.extend(when("/scheduledAt").map(|at| Part::Text(format!("It starts at {at}."))));
            match context.invited_address {
                Some(address) => {
                    let url = format!("{}/#/register?email={}", context.public_url, query_escape(address));
                    parts.push(Part::Text("You need an account to join; sign up with this address first.".into()));
                    parts.push(Part::Link { label: "Sign up".into(), url });
                    parts.push(Part::Link { label: "Then join the meeting".into(), url: room_link()? });
                }
                None => parts.push(Part::Link { label: "Open the meeting".into(), url: room_link()? }),
            }
            parts.push(
                Part::Text("The meeting is attached as a calendar file.".into()).only_if(payload_has_time(payload)),
            );
            (format!("Invitation: {}", room_name()), parts)
        }
        "meeting_reminder" => {
            let at = when("/scheduledAt").unwrap_or_else(|| "soon".into());
            let mut parts = vec![Part::Text(format!("\"{}\" starts at {at}.", room_name()))];
            if payload.get("late").and_then(Value::as_bool) == Some(true) {
                parts.push(Part::Text("This reminder is late: it could not be sent on time.".into()));
            }
            parts.push(Part::Link { label: "Join the meeting".into(), url: room_link()? });
            (format!("Reminder: {}", room_name()), parts)
        }
        "meeting_rescheduled" => {
            let at = when("/scheduledAt").unwrap_or_else(|| "a time to be announced".into());
            let parts = vec![
                Part::Text(format!("{} moved \"{}\" to {at}.", actor(), room_name())),
                Part::Link { label: "Open the meeting".into(), url: room_link()? },
                Part::Text("The updated calendar event is attached.".into()),
            ];
            (format!("Rescheduled: {}", room_name()), parts)
        }
        "meeting_cancelled" => {
            let mut text = format!("{} cancelled \"{}\"", actor(), room_name());
            if let Some(at) = when("/scheduledAt") {
                text.push_str(&format!(", planned for {at}"));
            }
            text.push('.');
            (format!("Cancelled: {}", room_name()), vec![Part::Text(text)])
        }
        "invitation_accepted" | "invitation_declined" => {
            let verb = if kind == "invitation_accepted" { "accepted" } else { "declined" };
            let parts = vec![
                Part::Text(format!("{} {verb} your invitation to \"{}\".", actor(), room_name())),
                Part::Link { label: "Open the meeting".into(), url: room_link()? },
            ];
            (format!("{} {verb}: {}", actor(), room_name()), parts)
        }
        "meeting_started" => {
            let parts = vec![
                Part::Text(format!("\"{}\" has started.", room_name())),
                Part::Link { label: "Join the meeting".into(), url: room_link()? },
            ];
            (format!("Started: {}", room_name()), parts)
        }
        "removed_from_room" => (
            format!("Removed from {}", room_name()),
            vec![Part::Text(format!("{} removed you from \"{}\".", actor(), room_name()))],
        ),
        "contact_added" => (
            format!("{} added you as a contact", actor()),
            vec![Part::Text(format!("{} added you to their contacts.", actor()))],
        ),
        "email_verification" => {
            let parts = vec![
                Part::Text("Welcome to rapat. Please confirm that this address is yours.".into()),
                Part::Link { label: "Verify your email address".into(), url: token_link("verify-email")? },
                Part::Text("If you did not create an account, ignore this email.".into()),
            ];
            ("Verify your email address".to_owned(), parts)
        }
        "password_reset" => {
            let expires = when("/expiresAt").ok_or_else(|| field("expiresAt"))?;
            let parts = vec![
                Part::Text("Someone asked to reset the password of your rapat account.".into()),
                Part::Link { label: "Choose a new password".into(), url: token_link("reset-password")? },
                Part::Text(format!(
                    "The link works once, until {expires}. Resetting the password signs out every session of the account."
                )),
                Part::Text("If you did not ask for this, ignore this email: your password stays as it is.".into()),
            ];
            ("Reset your password".to_owned(), parts)
        }
        other => return Err(ComposeError::UnknownKind(other.to_owned())),
    };
    Ok(render(subject, &parts))
}

impl Part {
    /// An empty text (left out) unless `keep`.
    fn only_if(self, keep: bool) -> Self {
        if keep { self } else { Part::Text(String::new()) }
    }
}

fn payload_has_time(payload: &Value) -> bool {
    payload.get("scheduledAt").is_some_and(Value::is_string)
}

fn render(subject: String, parts: &[Part]) -> Letter {
    let mut text = String::new();
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body style=\"font-family: sans-serif\">\n",
    );
    for part in parts {
        match part {
            Part::Text(words) if words.is_empty() => continue,
            Part::Text(words) => {
                text.push_str(words);
                html.push_str(&format!("<p>{}</p>\n", escape_html(words)));
            }
            Part::Link { label, url } => {
                text.push_str(&format!("{label}: {url}"));
                let url = escape_html(url);
                html.push_str(&format!("<p><a href=\"{url}\">{}</a></p>\n", escape_html(label)));
            }
        }
        text.push_str("\n\n");
    }
    text.push_str("-- \nrapat\n");
    html.push_str("</body></html>\n");
    Letter { subject, text, html }
}

/// An RFC 3339 time as people read it, in UTC.
fn time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|at| at.with_timezone(&Utc).format("%A %-d %B %Y, %H:%M UTC").to_string())
        .unwrap_or_else(|_| rfc3339.to_owned())
}

pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Percent-encodes everything but unreserved characters (RFC 3986 §2.3).
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const BASE: &str = "https://meet.example.com";

    fn context(token: Option<&'static str>, invited: Option<&'static str>) -> Context<'static> {
        Context { public_url: BASE, token, invited_address: invited }
    }

    fn room() -> Value {
        json!({ "id": "00000000-0000-0000-0000-000000000007", "name": "Plan <Q3> & \"budget\"" })
    }

    #[test]
    fn names_and_links_are_escaped_in_html_and_plain_in_text() {
        let payload = json!({ "room": room(), "actor": { "name": "Hana" }, "scheduledAt": "2031-05-01T09:30:00Z" });
        let letter = compose("room_invitation", &payload, &context(None, None)).expect("composed");
        assert_eq!(letter.subject, "Invitation: Plan <Q3> & \"budget\"");
        assert!(letter.text.contains("Hana invited you to the meeting \"Plan <Q3> & \"budget\"\"."), "{}", letter.text);
        assert!(letter.text.contains("Thursday 1 May 2031, 09:30 UTC"), "{}", letter.text);
        assert!(letter.text.contains(&format!("{BASE}/#/rooms/00000000-0000-0000-0000-000000000007")));
        assert!(letter.html.contains("Plan &lt;Q3&gt; &amp; &quot;budget&quot;"), "{}", letter.html);
        assert!(!letter.html.contains("<Q3>"));
    }

    #[test]
    fn an_invitation_without_an_account_leads_to_sign_up() {
        let payload = json!({ "room": room(), "actor": { "name": "Hana" } });
        let letter = compose("room_invitation", &payload, &context(None, Some("new+one@example.com"))).expect("ok");
        assert!(letter.text.contains(&format!("{BASE}/#/register?email=new%2Bone%40example.com")), "{}", letter.text);
        assert!(!letter.text.contains("calendar file"), "no time, no calendar: {}", letter.text);
    }

    #[test]
    fn token_emails_carry_their_link_and_need_a_token() {
        let letter = compose("email_verification", &json!({}), &context(Some("abc.def"), None)).expect("ok");
        assert!(letter.text.contains(&format!("{BASE}/#/verify-email?token=abc.def")), "{}", letter.text);
        let reset = json!({ "expiresAt": "2031-05-01T10:00:00Z" });
        let letter = compose("password_reset", &reset, &context(Some("abc.def"), None)).expect("ok");
        assert!(letter.text.contains(&format!("{BASE}/#/reset-password?token=abc.def")), "{}", letter.text);
        assert!(letter.text.contains("10:00 UTC"), "{}", letter.text);
        let missing = compose("password_reset", &reset, &context(None, None));
        assert_eq!(missing, Err(ComposeError::Missing { kind: "password_reset".into(), field: "token" }));
    }

    #[test]
    fn every_notification_kind_has_an_email_and_others_are_refused() {
        let payload = json!({ "room": room(), "actor": { "name": "Hana" }, "scheduledAt": "2031-05-01T09:30:00Z" });
        for kind in rapat_domain::settings::NotificationKind::ALL {
            let kind = serde_json::to_value(kind).expect("a kind serialises");
            let kind = kind.as_str().expect("as its stored name");
            let letter = compose(kind, &payload, &context(None, None)).expect(kind);
            assert!(!letter.subject.is_empty() && letter.html.ends_with("</html>\n"), "{kind}");
        }
        assert_eq!(
            compose("telegram", &payload, &context(None, None)),
            Err(ComposeError::UnknownKind("telegram".into()))
        );
    }
}
