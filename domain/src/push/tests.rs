//! Given/when/then tests of the push subscription rules, and the parsing of a
//! subscription's parts.

use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

const ANA: UserId = UserId::from_uuid(Uuid::from_u128(1));
const BUDI: UserId = UserId::from_uuid(Uuid::from_u128(2));
/// The P-256 generator point, uncompressed: a valid public key.
const POINT: &str = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
/// The same with its last bit flipped: 65 bytes, but not on the curve.
const OFF_CURVE: &str = "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfQ";
const AUTH: &str = "AAECAwQFBgcICQoLDA0ODw";

fn devices() -> TestFramework<PushDevices> {
    TestFramework::with(())
}

fn endpoint(n: u32) -> PushEndpoint {
    PushEndpoint::parse(&format!("https://push.example.net/send/{n}"), EndpointPolicy::HttpsOnly).expect("valid")
}

fn p256dh() -> P256dhKey {
    P256dhKey::parse(POINT).expect("valid")
}

fn auth(raw: &str) -> AuthSecret {
    AuthSecret::parse(raw).expect("valid")
}

fn subscribe(n: u32) -> PushCommand {
    PushCommand::Subscribe { user: ANA, endpoint: endpoint(n), p256dh: p256dh(), auth: auth(AUTH) }
}

fn subscribed(n: u32) -> PushEvent {
    PushEvent::PushSubscribed { user_id: ANA, endpoint: endpoint(n), p256dh: p256dh(), auth_secret: auth(AUTH) }
}

fn unsubscribe(n: u32, reason: UnsubscribeReason) -> PushCommand {
    PushCommand::Unsubscribe { user: ANA, endpoint: endpoint(n), reason }
}

#[test]
fn subscribing_records_the_subscription() {
    devices().given_no_previous_events().when(subscribe(1)).then_expect_events(vec![subscribed(1)]);
}

#[test]
fn subscribing_again_with_the_same_keys_records_nothing() {
    devices().given(vec![subscribed(1)]).when(subscribe(1)).then_expect_events(vec![]);
}

#[test]
fn subscribing_again_with_new_keys_replaces_them() {
    let renewed = "EBESExQVFhcYGRobHB0eHw";
    let command = PushCommand::Subscribe { user: ANA, endpoint: endpoint(1), p256dh: p256dh(), auth: auth(renewed) };
    let expected =
        PushEvent::PushSubscribed { user_id: ANA, endpoint: endpoint(1), p256dh: p256dh(), auth_secret: auth(renewed) };
    devices().given(vec![subscribed(1)]).when(command).then_expect_events(vec![expected]);
}

#[test]
fn a_user_keeps_at_most_the_cap_of_subscriptions() {
    let full: Vec<PushEvent> = (0..PushDevices::MAX_SUBSCRIPTIONS as u32).map(subscribed).collect();
    devices()
        .given(full.clone())
        .when(subscribe(999))
        .then_expect_error(PushError::TooManySubscriptions { max: PushDevices::MAX_SUBSCRIPTIONS });
    // Renewing one already there is not a new one.
    devices().given(full).when(subscribe(3)).then_expect_events(vec![]);
}

#[test]
fn the_user_unsubscribes_a_known_endpoint() {
    let expected = PushEvent::PushUnsubscribed { user_id: ANA, endpoint: endpoint(1), reason: UnsubscribeReason::User };
    devices()
        .given(vec![subscribed(1)])
        .when(unsubscribe(1, UnsubscribeReason::User))
        .then_expect_events(vec![expected]);
}

#[test]
fn the_user_unsubscribing_an_unknown_endpoint_is_refused() {
    devices()
        .given(vec![subscribed(1)])
        .when(unsubscribe(2, UnsubscribeReason::User))
        .then_expect_error(PushError::UnknownSubscription);
}

#[test]
fn a_gone_subscription_is_removed_once() {
    let gone = PushEvent::PushUnsubscribed { user_id: ANA, endpoint: endpoint(1), reason: UnsubscribeReason::Gone };
    devices()
        .given(vec![subscribed(1)])
        .when(unsubscribe(1, UnsubscribeReason::Gone))
        .then_expect_events(vec![gone.clone()]);
    devices().given(vec![subscribed(1), gone]).when(unsubscribe(1, UnsubscribeReason::Gone)).then_expect_events(vec![]);
}

#[test]
fn another_users_subscriptions_are_not_touched() {
    let command = PushCommand::Subscribe { user: BUDI, endpoint: endpoint(1), p256dh: p256dh(), auth: auth(AUTH) };
    devices().given(vec![subscribed(1)]).when(command).then_expect_error(PushError::OwnerMismatch);
}

#[test]
fn endpoints_are_https_unless_loopback_http_is_allowed() {
    use EndpointPolicy::*;
    let check = |raw: &str, policy, expected: Result<(), PushInputError>| {
        assert_eq!(PushEndpoint::parse(raw, policy).map(|_| ()), expected, "{raw} under {policy:?}");
    };
    check("https://fcm.googleapis.com/fcm/send/abc:def", HttpsOnly, Ok(()));
    check("https://updates.push.services.mozilla.com/wpush/v2/gAAAA", HttpsOnly, Ok(()));
    check("http://push.example.net/x", HttpsOnly, Err(PushInputError::InsecureEndpoint));
    check("http://127.0.0.1:9000/x", HttpsOnly, Err(PushInputError::InsecureEndpoint));
    check("http://127.0.0.1:9000/x", AllowLoopbackHttp, Ok(()));
    check("http://[::1]:9000/x", AllowLoopbackHttp, Ok(()));
    check("http://push.example.net/x", AllowLoopbackHttp, Err(PushInputError::InsecureEndpoint));
    check("https://10.0.0.7/x", HttpsOnly, Err(PushInputError::PrivateEndpoint));
    check("https://169.254.169.254/latest", HttpsOnly, Err(PushInputError::PrivateEndpoint));
    check("https://localhost/x", HttpsOnly, Err(PushInputError::PrivateEndpoint));
    check("ftp://push.example.net/x", HttpsOnly, Err(PushInputError::BadEndpoint));
    check("https://user:pw@push.example.net/x", HttpsOnly, Err(PushInputError::BadEndpoint));
    check("/relative", HttpsOnly, Err(PushInputError::BadEndpoint));
    check("", HttpsOnly, Err(PushInputError::BadEndpoint));
    check(
        &format!("https://push.example.net/{}", "a".repeat(PushEndpoint::MAX_LEN)),
        HttpsOnly,
        Err(PushInputError::BadEndpoint),
    );
}

#[test]
fn keys_must_be_a_curve_point_and_a_sixteen_byte_secret() {
    assert!(P256dhKey::parse(POINT).is_ok());
    assert_eq!(P256dhKey::parse(&format!("{POINT}=")).map(|key| key.as_str().to_owned()), Ok(POINT.to_owned()));
    for bad in [OFF_CURVE, "", "not base64!", AUTH, &POINT[..40]] {
        assert_eq!(P256dhKey::parse(bad).map(|_| ()), Err(PushInputError::BadP256dh), "{bad}");
    }
    assert!(AuthSecret::parse(AUTH).is_ok());
    assert!(AuthSecret::parse("AAECAwQFBgcICQoLDA0ODw==").is_ok());
    for bad in ["", "AAECAwQFBgcICQoLDA0O", POINT, "!!!!"] {
        assert_eq!(AuthSecret::parse(bad).map(|_| ()), Err(PushInputError::BadAuth), "{bad}");
    }
    assert_eq!(format!("{:?}", auth(AUTH)), "AuthSecret([redacted])");
}
