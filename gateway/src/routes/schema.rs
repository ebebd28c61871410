//! OpenAPI schemas of the request fields whose rules live in `rapat-domain`, built
//! from the domain's own constants (`#[schema(schema_with = ...)]`), so that the
//! document states exactly what the parsed types accept: a generated client or a
//! fuzzer and the server agree on what is valid.

use rapat_domain::account::{Avatar, Email, PersonName};
use rapat_domain::room::{DurationMinutes, MaxUsers, RoomDescription, RoomName};
use rapat_domain::text::{TextRules, Timestamp};
use serde::{Deserialize, Deserializer};
use utoipa::openapi::schema::{KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type};

fn string(nullable: bool) -> ObjectBuilder {
    let schema_type =
        if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { SchemaType::new(Type::String) };
    ObjectBuilder::new().schema_type(schema_type)
}

fn text(rules: TextRules, nullable: bool, description: &str) -> Object {
    string(nullable)
        .min_length((!rules.may_be_empty).then_some(1))
        .max_length(Some(rules.max_chars))
        .pattern(Some(rules.pattern()))
        .description(Some(description))
        .build()
}

const ONE_LINE: &str = "Trimmed of surrounding whitespace; no control characters.";

pub fn room_name() -> Object {
    text(RoomName::RULES, false, ONE_LINE)
}

pub fn room_name_or_null() -> Object {
    text(RoomName::RULES, true, ONE_LINE)
}

pub fn room_description_or_null() -> Object {
    text(RoomDescription::RULES, true, "Trimmed; tabs and line breaks allowed, no other control characters.")
}

pub fn person_name() -> Object {
    text(PersonName::RULES, false, ONE_LINE)
}

pub fn person_name_or_null() -> Object {
    text(PersonName::RULES, true, ONE_LINE)
}

/// What `Email::parse` accepts: one `@`, something before it, a domain with a dot
/// that neither starts nor ends it, no whitespace or control characters inside;
/// surrounding whitespace is trimmed and the address lowercased.
pub fn email() -> Object {
    const WS: &str = r"\t\n\u000B\u000C\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
    const NOT_IN: &str = r"@\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
    let pattern = format!("^[{WS}]*[^{NOT_IN}]+@[^.{NOT_IN}][^{NOT_IN}]*[.][^{NOT_IN}]*[^.{NOT_IN}][{WS}]*$");
    string(false)
        .min_length(Some(5))
        .max_length(Some(Email::MAX_CHARS))
        .pattern(Some(pattern))
        .description(Some("An email address; trimmed and lowercased."))
        .build()
}

/// An avatar as `AvatarChange::parse` takes it: a base64 image data URL, or "" to
/// remove it.
pub fn avatar_or_null() -> Object {
    string(true)
        .max_length(Some(Avatar::MAX_BYTES))
        .pattern(Some("^(data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+)?$"))
        .description(Some(
            "A PNG, JPEG, GIF or WebP image as a base64 data URL (at most 256 KiB); \"\" removes the avatar.",
        ))
        .build()
}

/// An RFC 3339 time in [`Timestamp`]'s range (years 1970 to 9999, UTC).
pub fn timestamp_or_null() -> Object {
    string(true)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .pattern(Some("^(19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"))
        .description(Some(format!("RFC 3339, from {} to {} in UTC.", Timestamp::MIN_TEXT, Timestamp::MAX_TEXT)))
        .build()
}

pub fn max_users() -> Object {
    ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(MaxUsers::LIMIT)).build()
}

pub fn max_users_or_null() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(1))
        .maximum(Some(MaxUsers::LIMIT))
        .build()
}

pub fn duration_minutes_or_null() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(1))
        .maximum(Some(DurationMinutes::MAX))
        .build()
}

/// A whole number, also when written `284.0`: JSON Schema's `integer` is any number
/// without a fractional part, so a client may send it that way.
pub fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(n) = number.as_u64() {
        return u32::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is too large")));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => Ok(f as u32),
        _ => Err(serde::de::Error::custom(format!("{number} is not a whole number from 0 to {}", u32::MAX))),
    }
}

/// [`whole_number`] for an optional field (`null` or absent is `None`).
pub fn optional_whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] u32);
    Option::<Whole>::deserialize(deserializer).map(|whole| whole.map(|Whole(n)| n))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::whole_number")]
        n: u32,
        #[serde(default, deserialize_with = "super::optional_whole_number")]
        m: Option<u32>,
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        let parse = |json: &str| serde_json::from_str::<Body>(json).map(|body| (body.n, body.m)).ok();
        assert_eq!(parse(r#"{"n": 284.0}"#), Some((284, None)));
        assert_eq!(parse(r#"{"n": 5, "m": 7.0}"#), Some((5, Some(7))));
        assert_eq!(parse(r#"{"n": 5, "m": null}"#), Some((5, None)));
        assert_eq!(parse(r#"{"n": 284.5}"#), None);
        assert_eq!(parse(r#"{"n": -1}"#), None);
        assert_eq!(parse(r#"{"n": 1e20}"#), None);
        assert_eq!(parse(r#"{"n": "5"}"#), None);
    }
}
