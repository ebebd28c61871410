//! The one rule for text a person types into rapat (names, descriptions): what a
//! command accepts, every read model can store. Postgres refuses a NUL in `text` and
//! `jsonb`, and other control characters have no business in a name or a
//! description either, so a value with one never becomes an event.
//!
//! The parsed types (`RoomName`, `RoomDescription`, `PersonName`) are built on
//! [`parse_text`]; the API's OpenAPI document states the same rule as a regular
//! expression ([`TextRules::pattern`]) so that a client knows it before it asks.

use serde::{Deserialize, Serialize};

/// What a kind of text must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextRules {
    /// Whether the text may be empty once trimmed.
    pub may_be_empty: bool,
    /// Most characters (Unicode scalar values), counted before trimming, as JSON
    /// Schema's `maxLength` counts them.
    pub max_chars: usize,
    /// Whether tabs and line breaks may appear inside the text (prose), or no
    /// control character at all (a name).
    pub multiline: bool,
}

/// Why a text is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters long")]
    TooLong { max: usize },
    #[error("must not contain control characters")]
    ControlCharacter,
}

/// The text trimmed of surrounding whitespace, if it follows `rules`.
pub fn parse_text(raw: &str, rules: TextRules) -> Result<String, TextError> {
    if raw.chars().count() > rules.max_chars {
        return Err(TextError::TooLong { max: rules.max_chars });
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() && !rules.may_be_empty {
        return Err(TextError::Empty);
    }
    let allowed = |c: char| rules.multiline && matches!(c, '\t' | '\n' | '\r');
    if trimmed.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(TextError::ControlCharacter);
    }
    Ok(trimmed.to_owned())
}

/// Unicode's White_Space characters (what `str::trim` removes), as a regex class body.
const WHITESPACE: &str = r"\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Unicode's control characters (`char::is_control`), as a regex class body.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// Control characters other than tab, line feed and carriage return.
const CONTROL_BUT_LINE_BREAKS: &str = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F";
/// Whitespace and control characters: what a visible character is not.
const INVISIBLE: &str = r"\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

impl TextRules {
    /// The rule as an ECMA-262 regular expression, for the OpenAPI document: any
    /// whitespace around it, then text without (disallowed) control characters that
    /// holds at least one visible character unless it may be empty. With
    /// `maxLength` it accepts exactly what [`parse_text`] accepts.
    pub fn pattern(self) -> String {
        let inner = if self.multiline { CONTROL_BUT_LINE_BREAKS } else { CONTROL };
        if self.may_be_empty {
            format!("^[{WHITESPACE}]*[^{inner}]*[{WHITESPACE}]*$")
        } else {
            format!("^[{WHITESPACE}]*[^{inner}]*[^{INVISIBLE}][^{inner}]*[{WHITESPACE}]*$")
        }
    }
}

/// A moment a read model can store: from 1970-01-01 up to the end of year 9999 (UTC).
/// chrono reaches years ±262143, Postgres's `timestamptz` only 4713 BC to 294276 AD;
/// nothing rapat schedules lies outside this narrower range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "chrono::DateTime<chrono::Utc>", into = "chrono::DateTime<chrono::Utc>")]
pub struct Timestamp(chrono::DateTime<chrono::Utc>);

/// Why a moment is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("must lie between {} and {}", Timestamp::MIN_TEXT, Timestamp::MAX_TEXT)]
pub struct TimestampOutOfRange;

impl Timestamp {
    pub const MIN_TEXT: &'static str = "1970-01-01T00:00:00Z";
    pub const MAX_TEXT: &'static str = "9999-12-31T23:59:59.999999Z";
    pub const MIN_YEAR: i32 = 1970;
    pub const MAX_YEAR: i32 = 9999;

    pub fn parse(time: chrono::DateTime<chrono::Utc>) -> Result<Self, TimestampOutOfRange> {
        use chrono::Datelike;
        if (Self::MIN_YEAR..=Self::MAX_YEAR).contains(&time.year()) { Ok(Self(time)) } else { Err(TimestampOutOfRange) }
    }

    pub fn get(self) -> chrono::DateTime<chrono::Utc> {
        self.0
    }
}

impl TryFrom<chrono::DateTime<chrono::Utc>> for Timestamp {
    type Error = TimestampOutOfRange;

    fn try_from(time: chrono::DateTime<chrono::Utc>) -> Result<Self, Self::Error> {
        Self::parse(time)
    }
}

impl From<Timestamp> for chrono::DateTime<chrono::Utc> {
    fn from(time: Timestamp) -> Self {
        time.0
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::*;

    const NAME: TextRules = TextRules { may_be_empty: false, max_chars: 5, multiline: false };
    const PROSE: TextRules = TextRules { may_be_empty: true, max_chars: 8, multiline: true };

    #[test]
    fn names_refuse_control_characters_and_blank_text() {
        assert_eq!(parse_text(" Ana\t", NAME), Ok("Ana".to_owned()));
        assert_eq!(parse_text(" \u{a0}", NAME), Err(TextError::Empty));
        assert_eq!(parse_text("a\u{0}b", NAME), Err(TextError::ControlCharacter));
        assert_eq!(parse_text("a\nb", NAME), Err(TextError::ControlCharacter));
        assert_eq!(parse_text("a\u{85}b", NAME), Err(TextError::ControlCharacter));
        assert_eq!(parse_text("ééééé", NAME), Ok("ééééé".to_owned()));
        // Counted before trimming, as the document's maxLength counts.
        assert_eq!(parse_text(" abcde", NAME), Err(TextError::TooLong { max: 5 }));
    }

    #[test]
    fn prose_keeps_line_breaks_and_refuses_other_control_characters() {
        assert_eq!(parse_text("", PROSE), Ok(String::new()));
        assert_eq!(parse_text("a\r\n\tb ", PROSE), Ok("a\r\n\tb".to_owned()));
        assert_eq!(parse_text("a\u{0}", PROSE), Err(TextError::ControlCharacter));
        assert_eq!(parse_text("a\u{1b}[2J", PROSE), Err(TextError::ControlCharacter));
        assert_eq!(parse_text("123456789", PROSE), Err(TextError::TooLong { max: 8 }));
    }

    #[test]
    fn patterns_name_the_same_classes() {
        assert!(NAME.pattern().starts_with(r"^[\t\n\u000B"));
        assert!(NAME.pattern().contains(r"[^\u0000-\u001F\u007F-\u009F]*"));
        assert!(PROSE.pattern().contains(r"[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*"));
        assert!(!PROSE.pattern().contains(INVISIBLE));
    }

    /// The document's pattern and the parser agree, on strings built from the
    /// characters where they could differ (whitespace that is or is not a control
    /// character, C1 controls, line breaks).
    #[test]
    fn patterns_accept_exactly_what_parsing_accepts() {
        let alphabet = [
            'a', ' ', '\t', '\n', '\r', '\u{0}', '\u{b}', '\u{1c}', '\u{7f}', '\u{85}', '\u{a0}', '\u{2028}',
            '\u{3000}', 'é', '\u{200b}',
        ];
        for rules in [NAME, PROSE] {
            let pattern = regex::Regex::new(&rules.pattern()).expect("a valid pattern");
            // Every string of up to three characters of the alphabet.
            let mut strings = vec![String::new()];
            for _ in 0..3 {
                let longer: Vec<String> =
                    strings.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
                strings.extend(longer);
            }
            strings.sort();
            strings.dedup();
            for text in strings {
                let documented = pattern.is_match(&text) && text.chars().count() <= rules.max_chars;
                assert_eq!(documented, parse_text(&text, rules).is_ok(), "{rules:?} {text:?}");
            }
        }
    }

    #[test]
    fn timestamps_stay_within_what_postgres_stores() {
        let at = |year| Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single().map(Timestamp::parse);
        assert!(matches!(at(2026), Some(Ok(_))));
        assert!(matches!(at(1970), Some(Ok(_))));
        assert!(matches!(at(9999), Some(Ok(_))));
        assert_eq!(at(1969), Some(Err(TimestampOutOfRange)));
        assert_eq!(at(10_000), Some(Err(TimestampOutOfRange)));
        assert_eq!(at(-262_143), Some(Err(TimestampOutOfRange)));
        assert!(serde_json::from_str::<Timestamp>(r#""-262143-01-01T00:00:00Z""#).is_err());
        assert!(serde_json::from_str::<Timestamp>(r#""2026-11-26T12:00:00Z""#).is_ok());
        let max: DateTime<Utc> = Timestamp::MAX_TEXT.parse().expect("a time");
        assert!(Timestamp::parse(max).is_ok());
    }
}
