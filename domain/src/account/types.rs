//! The parsed values an account is made of. `Deserialize` goes through `parse`
//! (`serde(try_from)`), so a value read from an event, a snapshot or a request body
//! obeys the same rules as one built in code.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::AccountInputError;
use crate::text::{TextError, TextRules, parse_text};

/// An email address, trimmed and lowercased so that one mailbox is one account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit on a forward path.
    pub const MAX_CHARS: usize = 254;

    /// The namespace of [`Email::claim_id`]. Fixed forever: changing it would give
    /// every address a new claim and so allow duplicate accounts.
    const CLAIM_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_3c2a_8e4b_5f70_9a1d_2b3c_4d5e_6f70);

    /// Deliberately not RFC 5322 in full: the address must look like a mailbox a
    /// person can receive mail at, and the confirmation mail (not this parser) proves it.
    pub fn parse(raw: String) -> Result<Self, AccountInputError> {
        // Counted as sent, as the API document's maxLength counts.
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(AccountInputError::EmailTooLong { max: Self::MAX_CHARS });
        }
        let email = raw.trim().to_lowercase();
        // Control characters (a NUL byte, say) have no place in an address, and
        // Postgres could not even store one.
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(AccountInputError::EmailInvalid);
        }
        let mut parts = email.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AccountInputError::EmailInvalid);
        };
        let domain_ok = domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.');
        if local.is_empty() || !domain_ok {
            return Err(AccountInputError::EmailInvalid);
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of the `EmailClaim` aggregate for this address (UUID v5 of the
    /// normalised address), so that two registrations of one address meet at the same
    /// aggregate and the second one loses.
    pub fn claim_id(&self) -> Uuid {
        Uuid::new_v5(&Self::CLAIM_NAMESPACE, self.0.as_bytes())
    }
}

impl TryFrom<String> for Email {
    type Error = AccountInputError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> Self {
        email.0
    }
}

/// A first or last name: 1 to 100 characters once trimmed, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PersonName(String);

impl PersonName {
    pub const MAX_CHARS: usize = 100;
    pub const RULES: TextRules = TextRules { may_be_empty: false, max_chars: Self::MAX_CHARS, multiline: false };

    pub fn parse(raw: String) -> Result<Self, AccountInputError> {
        parse_text(&raw, Self::RULES).map(Self).map_err(|error| match error {
            TextError::Empty => AccountInputError::NameEmpty,
            TextError::TooLong { max } => AccountInputError::NameTooLong { max },
            TextError::ControlCharacter => AccountInputError::NameHasControlCharacters,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PersonName {
    type Error = AccountInputError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<PersonName> for String {
    fn from(name: PersonName) -> Self {
        name.0
    }
}

/// A profile picture as a base64 image data URL, small enough to live in an event.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Avatar(String);

impl Avatar {
    /// The limit applies to the whole data URL, the form it is stored and sent in.
    pub const MAX_BYTES: usize = 256 * 1024;
    const MEDIA_TYPES: [&'static str; 4] = ["png", "jpeg", "gif", "webp"];

    /// An empty string is not an avatar: see [`AvatarChange::parse`] for "remove it".
    pub fn parse(raw: String) -> Result<Self, AccountInputError> {
        if raw.len() > Self::MAX_BYTES {
            return Err(AccountInputError::AvatarTooLarge { max_bytes: Self::MAX_BYTES });
        }
        let data = raw
            .strip_prefix("data:image/")
            .and_then(|rest| rest.split_once(";base64,"))
            .filter(|(media_type, _)| Self::MEDIA_TYPES.contains(media_type))
            .map(|(_, data)| data)
            .ok_or(AccountInputError::AvatarNotAnImage)?;
        let base64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=');
        if data.is_empty() || !data.bytes().all(base64) {
            return Err(AccountInputError::AvatarNotAnImage);
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Avatar {
    /// Up to 256 KiB of base64 would drown any log line it appeared in.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Avatar({} bytes)", self.0.len())
    }
}

impl TryFrom<String> for Avatar {
    type Error = AccountInputError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl From<Avatar> for String {
    fn from(avatar: Avatar) -> Self {
        avatar.0
    }
}

/// What a profile update does to the avatar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AvatarChange {
    Set(Avatar),
    Remove,
}

impl AvatarChange {
    /// The API's convention: an empty string removes the avatar.
    pub fn parse(raw: String) -> Result<Self, AccountInputError> {
        if raw.is_empty() { Ok(Self::Remove) } else { Avatar::parse(raw).map(Self::Set) }
    }
}

/// What a user tells others about their availability (presence, which the system
/// observes, is a separate read model).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    #[default]
    Active,
    Away,
    Busy,
    Offline,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Member,
    Admin,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: std::fmt::Debug>(input: Result<T, AccountInputError>, expect: Result<&str, AccountInputError>) {
        let got = input.map(|value| format!("{value:?}"));
        assert_eq!(got, expect.map(str::to_owned));
    }

    #[test]
    fn emails() {
        check(Email::parse("  Ana@Example.COM ".into()), Ok(r#"Email("ana@example.com")"#));
        check(Email::parse("a.b+tag@sub.example.id".into()), Ok(r#"Email("a.b+tag@sub.example.id")"#));
        check(Email::parse("ana".into()), Err(AccountInputError::EmailInvalid));
        check(Email::parse("@example.com".into()), Err(AccountInputError::EmailInvalid));
        check(Email::parse("ana@localhost".into()), Err(AccountInputError::EmailInvalid));
        check(Email::parse("ana@example.".into()), Err(AccountInputError::EmailInvalid));
        check(Email::parse("a@b@example.com".into()), Err(AccountInputError::EmailInvalid));
        check(Email::parse("an a@example.com".into()), Err(AccountInputError::EmailInvalid));
        check(Email::parse("ana\u{0}@example.com".into()), Err(AccountInputError::EmailInvalid));
        check(Email::parse(String::new()), Err(AccountInputError::EmailInvalid));
        let long = format!("{}@example.com", "a".repeat(242));
        check(Email::parse(long.clone()).map(|_| ()), Ok("()"));
        check(Email::parse(format!("a{long}")), Err(AccountInputError::EmailTooLong { max: 254 }));
    }

    #[test]
    fn claim_ids_follow_the_normalised_address() {
        let id = |raw: &str| Email::parse(raw.to_owned()).map(|email| email.claim_id());
        assert_eq!(id("Ana@Example.com"), id(" ana@example.com"));
        assert_ne!(id("ana@example.com"), id("bob@example.com"));
        assert_eq!(id("ana@example.com").map(|uuid| uuid.get_version_num()), Ok(5));
    }

    #[test]
    fn person_names() {
        check(PersonName::parse(" Siti ".into()), Ok(r#"PersonName("Siti")"#));
        check(PersonName::parse(" ".into()), Err(AccountInputError::NameEmpty));
        check(PersonName::parse("a\tb".into()), Err(AccountInputError::NameHasControlCharacters));
        check(PersonName::parse("x".repeat(101)), Err(AccountInputError::NameTooLong { max: 100 }));
    }

    #[test]
    fn avatars() {
        check(Avatar::parse("data:image/png;base64,iVBORw0KGgo=".into()), Ok("Avatar(34 bytes)"));
        check(AvatarChange::parse("data:image/webp;base64,UklGRg==".into()).map(|_| ()), Ok("()"));
        check(AvatarChange::parse(String::new()), Ok("Remove"));
        check(Avatar::parse(String::new()), Err(AccountInputError::AvatarNotAnImage));
        check(Avatar::parse("data:image/svg+xml;base64,PHN2Zz4=".into()), Err(AccountInputError::AvatarNotAnImage));
        check(Avatar::parse("data:text/html;base64,PGI+".into()), Err(AccountInputError::AvatarNotAnImage));
        check(Avatar::parse("https://example.com/a.png".into()), Err(AccountInputError::AvatarNotAnImage));
        check(Avatar::parse("data:image/png;base64,<script>".into()), Err(AccountInputError::AvatarNotAnImage));
        check(Avatar::parse("data:image/png;base64,".into()), Err(AccountInputError::AvatarNotAnImage));
        let huge = format!("data:image/png;base64,{}", "A".repeat(Avatar::MAX_BYTES));
        check(Avatar::parse(huge), Err(AccountInputError::AvatarTooLarge { max_bytes: 262_144 }));
    }

    #[test]
    fn statuses_and_roles_are_lowercase_on_the_wire() {
        assert_eq!(serde_json::to_value(AccountStatus::Busy).ok(), Some(serde_json::json!("busy")));
        assert_eq!(serde_json::to_value(Role::Admin).ok(), Some(serde_json::json!("admin")));
    }
}
