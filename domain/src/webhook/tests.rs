//! Given/when/then tests of every webhook rule, and the parsers' tables.

use core::net::IpAddr;

use chrono::{TimeZone, Utc};
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

fn webhook() -> TestFramework<Webhook> {
    TestFramework::with(())
}

fn url(raw: &str) -> WebhookUrl {
    WebhookUrl::parse(raw).expect("a valid URL")
}

fn secret(byte: u8) -> WebhookSecret {
    WebhookSecret::from_key(&[byte; 32])
}

fn patterns(raw: &[&str]) -> Vec<EventTypePattern> {
    parse_event_types(raw).expect("valid patterns")
}

fn registered() -> WebhookEvent {
    WebhookEvent::WebhookRegistered {
        url: url("https://hooks.example.com/rapat"),
        event_types: patterns(&["room.*"]),
        description: "CRM".to_owned(),
        secret: secret(1),
    }
}

fn register() -> WebhookCommand {
    WebhookCommand::Register {
        url: url("https://hooks.example.com/rapat"),
        event_types: patterns(&["room.*"]),
        description: "CRM".to_owned(),
        secret: secret(1),
    }
}

#[test]
fn an_endpoint_is_registered() {
    webhook().given_no_previous_events().when(register()).then_expect_events(vec![registered()]);
}

#[test]
fn registering_again_with_the_same_request_changes_nothing_and_a_different_one_is_refused() {
    webhook().given(vec![registered()]).when(register()).then_expect_events(vec![]);
    let other = WebhookCommand::Register {
        url: url("https://other.example.com/"),
        event_types: patterns(&["*"]),
        description: String::new(),
        secret: secret(2),
    };
    webhook().given(vec![registered()]).when(other).then_expect_error(WebhookError::AlreadyRegistered);
}

#[test]
fn an_update_records_only_what_changed() {
    let update = WebhookCommand::Update {
        url: Some(url("https://hooks.example.com/rapat")),
        event_types: Some(patterns(&["RoomCreated", "*"])),
        enabled: Some(false),
        description: None,
    };
    webhook().given(vec![registered()]).when(update).then_expect_events(vec![WebhookEvent::WebhookUpdated {
        url: None,
        event_types: Some(patterns(&["RoomCreated", "*"])),
        enabled: Some(false),
        description: None,
    }]);
}

#[test]
fn an_update_that_changes_nothing_stores_nothing() {
    let update = WebhookCommand::Update { url: None, event_types: None, enabled: Some(true), description: None };
    webhook().given(vec![registered()]).when(update).then_expect_events(vec![]);
}

#[test]
fn a_rotation_keeps_the_previous_secret_for_a_day() {
    let at = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).single().expect("time");
    webhook()
        .given(vec![registered()])
        .when(WebhookCommand::RotateSecret { secret: secret(2), at })
        .then_expect_events(vec![WebhookEvent::WebhookSecretRotated {
            secret: secret(2),
            previous_secret_expires_at: Utc.with_ymd_and_hms(2026, 11, 28, 8, 0, 0).single().expect("time"),
        }]);
}

#[test]
fn a_deleted_endpoint_is_gone_for_every_command() {
    webhook()
        .given(vec![registered()])
        .when(WebhookCommand::Delete)
        .then_expect_events(vec![WebhookEvent::WebhookDeleted {}]);
    let deleted = vec![registered(), WebhookEvent::WebhookDeleted {}];
    webhook().given(deleted.clone()).when(WebhookCommand::Delete).then_expect_error(WebhookError::NotFound);
    webhook()
        .given(deleted.clone())
        .when(WebhookCommand::RetryDelivery { delivery_id: Uuid::from_u128(9) })
        .then_expect_error(WebhookError::NotFound);
    webhook().given(deleted).when(register()).then_expect_error(WebhookError::AlreadyRegistered);
}

#[test]
fn an_unregistered_endpoint_takes_no_command_but_registration() {
    webhook().given_no_previous_events().when(WebhookCommand::Delete).then_expect_error(WebhookError::NotFound);
}

#[test]
fn a_manual_retry_is_recorded() {
    let delivery_id = Uuid::from_u128(7);
    webhook()
        .given(vec![registered()])
        .when(WebhookCommand::RetryDelivery { delivery_id })
        .then_expect_events(vec![WebhookEvent::WebhookDeliveryRetried { delivery_id }]);
}

fn check_url(raw: &str, expect_ok: bool) {
    assert_eq!(WebhookUrl::parse(raw).is_ok(), expect_ok, "{raw}");
}

#[test]
fn urls_are_absolute_http_or_https_without_credentials() {
    check_url("https://hooks.example.com/a?b=c", true);
    check_url("http://127.0.0.1:8080/hook", true);
    check_url("http://[::1]:8080/hook", true);
    check_url("ftp://hooks.example.com/", false);
    check_url("file:///etc/passwd", false);
    check_url("/relative", false);
    check_url("https://user:pw@hooks.example.com/", false);
    check_url("https://hooks.example.com/#top", false);
    check_url("not a url", false);
}

#[test]
fn patterns_are_an_event_type_an_aggregate_prefix_or_everything() {
    assert_eq!(EventTypePattern::parse("*"), Ok(EventTypePattern::All));
    assert_eq!(EventTypePattern::parse("room.*"), Ok(EventTypePattern::Aggregate("room".to_owned())));
    assert_eq!(EventTypePattern::parse("RoomCreated"), Ok(EventTypePattern::Exact("RoomCreated".to_owned())));
    for bad in ["", "room", "Room.*", "room.Created", "**", "room.*.*", "room created", "RoomCreated*"] {
        assert!(EventTypePattern::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(parse_event_types::<&str>(&[]), Err(WebhookError::NoEventTypes));
    assert_eq!(
        patterns(&["*", "*", "room.*"]),
        vec![EventTypePattern::All, EventTypePattern::Aggregate("room".into())]
    );
    let room = EventTypePattern::Aggregate("room".to_owned());
    assert!(room.matches("room", "RoomCreated") && !room.matches("account", "AccountRegistered"));
}

#[test]
fn secrets_follow_the_standard_webhooks_format() {
    let made = secret(3);
    assert!(made.expose().starts_with("whsec_"));
    assert_eq!(WebhookSecret::parse(made.expose()), Ok(made.clone()));
    assert_eq!(made.key(), vec![3; 32]);
    assert!(!format!("{made:?}").contains(made.expose()));
    // 24 bytes is the format's minimum.
    assert!(WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_short", "whsec_!!!!"] {
        assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
    }
}

fn check_address(raw: &str, public: bool) {
    let address: IpAddr = raw.parse().expect("an address");
    assert_eq!(is_public_address(address), public, "{raw}");
}

#[test]
fn private_loopback_link_local_and_other_special_addresses_are_not_public() {
    for refused in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fd00::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "2002:7f00:1::",
    ] {
        check_address(refused, false);
    }
    for allowed in ["93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
        check_address(allowed, true);
    }
}
