//! Keeps `schemas/events/` and the domain's event enums in step: every variant has
//! a schema its serialised payload passes, with the same schema version, and every
//! schema on disk belongs to a variant.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::{Aggregate, DomainEvent};
use rapat_domain::account::{
    Account, AccountEvent, AccountStatus, AccountTokenKey, Avatar, Email, EmailClaim, EmailClaimEvent, PersonName,
    Role, TokenPurpose, TokenRequest,
};
use rapat_domain::contacts::{ContactList, ContactListEvent};
use rapat_domain::credentials::PasswordHash;
use rapat_domain::envelope::{StoredCommit, StoredEvent, Upcast, decode_event, schema_version_of, split_event};
use rapat_domain::ids::{RoomId, TrackRecordingId, UserId};
use rapat_domain::inbox::{Inbox, InboxEvent};
use rapat_domain::invitation::{Invitation, InvitationEvent};
use rapat_domain::push::{
    AuthSecret, EndpointPolicy, P256dhKey, PushDevices, PushEndpoint, PushEvent, UnsubscribeReason,
};
use rapat_domain::room::{
    DurationMinutes, MaxUsers, RecordingCodec, RecordingStopReason, Room, RoomDescription, RoomEvent, RoomName,
    TrackRecording,
};
use rapat_domain::session::{RefreshToken, RevokeReason, Session, SessionEvent};
use rapat_domain::settings::{
    Channels, Locale, NotificationKind, ReminderMinutes, SettingsEvent, Timezone, UserSettings,
};
use rapat_domain::webhook::{Webhook, WebhookEvent, WebhookSecret, WebhookUrl, parse_event_types};
use rapat_schemas::{
    EVENT_SCHEMAS, SchemaError, schema_version, validate_commit, validate_event, validate_stored_event,
};
use serde_json::{Value, json};
use uuid::Uuid;

const ANA: UserId = UserId::from_uuid(Uuid::from_u128(0xa));
const BUDI: UserId = UserId::from_uuid(Uuid::from_u128(0xb));

fn hash() -> PasswordHash {
    PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned())
}

fn email() -> Email {
    Email::parse("ana@example.com".to_owned()).expect("valid email")
}

fn person(raw: &str) -> PersonName {
    PersonName::parse(raw.to_owned()).expect("valid name")
}

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 14, 9, 30, 0).single().expect("a valid time")
}

fn track_recording() -> TrackRecording {
    TrackRecording {
        id: TrackRecordingId::from_uuid(Uuid::from_u128(0x7)),
        user_id: BUDI,
        codec: RecordingCodec::Vp8,
        started_at: at(),
        duration_ms: 61_250,
        bytes: 4_718_592,
    }
}

/// Every variant once, as a chain: `None` gives the first example, each example the
/// next. The `match` is exhaustive, so a new variant does not compile until it gets
/// an arm here, and so an example and (through the tests) a schema.
fn next_room_event(previous: Option<&RoomEvent>) -> Option<RoomEvent> {
    use RoomEvent::*;
    Some(match previous {
        None => RoomCreated {
            host_id: ANA,
            name: RoomName::parse("Sprint review".to_owned()).expect("valid name"),
            description: RoomDescription::parse("Demo and feedback".to_owned()).expect("valid description"),
            password_hash: Some(hash()),
            max_users: MaxUsers::parse(25).expect("valid maximum"),
            scheduled_at: Some(at()),
            duration_minutes: Some(DurationMinutes::parse(45).expect("valid duration")),
        },
        Some(RoomCreated { .. }) => RoomSettingsUpdated {
            name: Some(RoomName::parse("Retro".to_owned()).expect("valid name")),
            description: None,
            password_hash: Some(hash()),
            password_cleared: false,
            max_users: Some(MaxUsers::parse(MaxUsers::LIMIT).expect("valid maximum")),
        },
        Some(RoomSettingsUpdated { .. }) => ParticipantJoined { user_id: BUDI },
        Some(ParticipantJoined { .. }) => ParticipantAudioChanged { user_id: BUDI, muted: true },
        Some(ParticipantAudioChanged { .. }) => ParticipantVideoChanged { user_id: BUDI, on: true },
        Some(ParticipantVideoChanged { .. }) => ParticipantScreenShareChanged { user_id: BUDI, sharing: true },
        Some(ParticipantScreenShareChanged { .. }) => ParticipantMutedByHost { user_id: BUDI, muted_by: ANA },
        Some(ParticipantMutedByHost { .. }) => ParticipantUnmuteAllowed { user_id: BUDI, allowed_by: ANA },
        Some(ParticipantUnmuteAllowed { .. }) => ParticipantRemoved { user_id: BUDI, removed_by: ANA },
        Some(ParticipantRemoved { .. }) => ParticipantLeft { user_id: ANA },
        Some(ParticipantLeft { .. }) => RoomRescheduled {
            scheduled_at: at(),
            duration_minutes: Some(DurationMinutes::parse(DurationMinutes::MAX).expect("valid duration")),
            schedule_sequence: 1,
            rescheduled_by: ANA,
        },
        Some(RoomRescheduled { .. }) => {
            MeetingReminderDue { recipient_id: BUDI, schedule_sequence: 1, due_at: at(), late: true }
        }
        Some(MeetingReminderDue { .. }) => RecordingStarted { started_by: ANA },
        Some(RecordingStarted { .. }) => RecordingStopped { stopped_by: Some(ANA), reason: RecordingStopReason::Host },
        Some(RecordingStopped { .. }) => TrackRecordingFinished { recording: track_recording() },
        Some(TrackRecordingFinished { .. }) => TrackRecordingExpired { track_recording_id: track_recording().id },
        Some(TrackRecordingExpired { .. }) => RoomCancelled { cancelled_by: ANA },
        Some(RoomCancelled { .. }) => RoomEnded {},
        Some(RoomEnded {}) => return None,
    })
}

fn next_account_event(previous: Option<&AccountEvent>) -> Option<AccountEvent> {
    use AccountEvent::*;
    Some(match previous {
        None => AccountRegistered {
            email: email(),
            password_hash: hash(),
            first_name: person("Ana"),
            last_name: person("Putri"),
            role: Role::Member,
        },
        Some(AccountRegistered { .. }) => ProfileUpdated {
            first_name: Some(person("Siti")),
            last_name: None,
            avatar: Some(Avatar::parse("data:image/jpeg;base64,/9j/4AAQSkZJRg==".to_owned()).expect("valid avatar")),
            avatar_removed: false,
            status: Some(AccountStatus::Busy),
        },
        Some(ProfileUpdated { .. }) => PasswordChanged { password_hash: hash() },
        Some(PasswordChanged { .. }) => StatusChanged { status: AccountStatus::Away },
        Some(StatusChanged { .. }) => RoleGranted { role: Role::Admin },
        // Only ever the event of an unregistered account; the chain is a list of examples.
        Some(RoleGranted { .. }) => RegistrationAbandoned {},
        Some(RegistrationAbandoned {}) => {
            let TokenRequest { request_id, token_hash } = token(TokenPurpose::EmailVerification);
            EmailVerificationRequested { request_id, token_hash }
        }
        Some(EmailVerificationRequested { .. }) => EmailVerified {},
        Some(EmailVerified {}) => {
            let TokenRequest { request_id, token_hash } = token(TokenPurpose::PasswordReset);
            PasswordResetRequested { request_id, token_hash, expires_at: at() }
        }
        Some(PasswordResetRequested { .. }) => {
            PasswordReset { password_hash: hash(), token_hash: token(TokenPurpose::PasswordReset).token_hash }
        }
        Some(PasswordReset { .. }) => return None,
    })
}

fn token(purpose: TokenPurpose) -> TokenRequest {
    TokenRequest::new(&AccountTokenKey::derive(b"a deployment secret"), purpose, ANA, Uuid::from_u128(0x7))
}

fn next_email_claim_event(previous: Option<&EmailClaimEvent>) -> Option<EmailClaimEvent> {
    match previous {
        None => Some(EmailClaimEvent::EmailClaimed { email: email(), account_id: ANA, claimed_at: Some(at()) }),
        Some(EmailClaimEvent::EmailClaimed { .. }) => Some(EmailClaimEvent::EmailClaimConfirmed { account_id: ANA }),
        Some(EmailClaimEvent::EmailClaimConfirmed { .. }) => {
            Some(EmailClaimEvent::EmailClaimReleased { account_id: BUDI })
        }
        Some(EmailClaimEvent::EmailClaimReleased { .. }) => None,
    }
}

fn next_contact_list_event(previous: Option<&ContactListEvent>) -> Option<ContactListEvent> {
    use ContactListEvent::*;
    Some(match previous {
        None => ContactAdded { owner_id: ANA, contact_id: BUDI },
        Some(ContactAdded { .. }) => ContactRemoved { owner_id: ANA, contact_id: BUDI },
        Some(ContactRemoved { .. }) => return None,
    })
}

fn next_session_event(previous: Option<&SessionEvent>) -> Option<SessionEvent> {
    use SessionEvent::*;
    let refresh_hash = |n: u8| RefreshToken::new(Uuid::from_u128(0x5), [n; 32]).hash();
    Some(match previous {
        None => SessionStarted { user_id: ANA, refresh_hash: refresh_hash(1), expires_at: at() },
        Some(SessionStarted { .. }) => {
            SessionRefreshed { refresh_hash: refresh_hash(2), expires_at: at(), generation: 1 }
        }
        Some(SessionRefreshed { .. }) => SessionRevoked { reason: RevokeReason::RefreshReuse },
        Some(SessionRevoked { .. }) => return None,
    })
}

fn next_invitation_event(previous: Option<&InvitationEvent>) -> Option<InvitationEvent> {
    use InvitationEvent::*;
    let room_id = RoomId::from_uuid(Uuid::from_u128(0x10));
    Some(match previous {
        None => InvitationIssued { room_id, host_id: ANA, invitee_id: Some(BUDI), email: None },
        Some(InvitationIssued { .. }) => InvitationAccepted { invitee_id: BUDI },
        Some(InvitationAccepted { .. }) => InvitationDeclined { invitee_id: BUDI },
        Some(InvitationDeclined { .. }) => InvitationRevoked { revoked_by: ANA },
        Some(InvitationRevoked { .. }) => InvitationBoundToAccount { invitee_id: BUDI },
        Some(InvitationBoundToAccount { .. }) => return None,
    })
}

fn next_settings_event(previous: Option<&SettingsEvent>) -> Option<SettingsEvent> {
    let every_kind =
        NotificationKind::ALL.iter().map(|kind| (*kind, Channels { in_app: true, email: false, push: true }));
    match previous {
        None => Some(SettingsEvent::UserSettingsUpdated {
            user_id: ANA,
            timezone: Some(Timezone::parse("Asia/Jakarta").expect("a zone")),
            locale: Some(Locale::parse("id-ID").expect("a locale")),
            reminder_minutes: Some(ReminderMinutes::parse(1440).expect("in range")),
            notifications: every_kind.collect(),
        }),
        Some(SettingsEvent::UserSettingsUpdated { .. }) => None,
    }
}

fn next_inbox_event(previous: Option<&InboxEvent>) -> Option<InboxEvent> {
    match previous {
        None => Some(InboxEvent::NotificationsRead { user_id: ANA, ids: vec![Uuid::from_u128(1), Uuid::from_u128(2)] }),
        Some(InboxEvent::NotificationsRead { .. }) => Some(InboxEvent::AllNotificationsRead { user_id: ANA }),
        Some(InboxEvent::AllNotificationsRead { .. }) => None,
    }
}

fn next_webhook_event(previous: Option<&WebhookEvent>) -> Option<WebhookEvent> {
    use WebhookEvent::*;
    let url = |raw: &str| WebhookUrl::parse(raw).expect("a valid URL");
    Some(match previous {
        None => WebhookRegistered {
            url: url("https://hooks.example.com/rapat"),
            event_types: parse_event_types(&["RoomCreated", "account.*", "*"]).expect("patterns"),
            description: "CRM".to_owned(),
            secret: WebhookSecret::from_key(&[7; 32]),
        },
        Some(WebhookRegistered { .. }) => WebhookUpdated {
            url: Some(url("http://hooks.example.com:8080/v2")),
            event_types: Some(parse_event_types(&["room.*"]).expect("patterns")),
            enabled: Some(false),
            description: Some(String::new()),
        },
        Some(WebhookUpdated { .. }) => {
            WebhookSecretRotated { secret: WebhookSecret::from_key(&[8; 32]), previous_secret_expires_at: at() }
        }
        Some(WebhookSecretRotated { .. }) => WebhookDeliveryRetried { delivery_id: Uuid::from_u128(3) },
        Some(WebhookDeliveryRetried { .. }) => WebhookDeleted {},
        Some(WebhookDeleted {}) => return None,
    })
}

fn next_push_event(previous: Option<&PushEvent>) -> Option<PushEvent> {
    let endpoint = PushEndpoint::parse("https://push.example.net/send/abc", EndpointPolicy::HttpsOnly).expect("valid");
    match previous {
        None => Some(PushEvent::PushSubscribed {
            user_id: ANA,
            endpoint,
            p256dh: P256dhKey::parse(
                "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU",
            )
            .expect("a point"),
            auth_secret: AuthSecret::parse("AAECAwQFBgcICQoLDA0ODw").expect("16 bytes"),
        }),
        Some(PushEvent::PushSubscribed { .. }) => {
            Some(PushEvent::PushUnsubscribed { user_id: ANA, endpoint, reason: UnsubscribeReason::Gone })
        }
        Some(PushEvent::PushUnsubscribed { .. }) => None,
    }
}

fn chain<E>(next: fn(Option<&E>) -> Option<E>) -> Vec<E> {
    let mut events: Vec<E> = Vec::new();
    while let Some(event) = next(events.last()) {
        events.push(event);
    }
    events
}

/// One event, serialised and split the way the event store writes it.
struct Example {
    aggregate_type: &'static str,
    event_type: String,
    schema_version: u32,
    payload: Value,
    stored: StoredEvent,
    /// Decodes the stored event and compares it with the original.
    round_trips: bool,
}

fn examples_of<A: Aggregate>(events: Vec<A::Event>) -> Vec<Example>
where
    A::Event: Upcast,
{
    let mut examples = Vec::new();
    for (index, event) in events.into_iter().enumerate() {
        let (event_type, payload) = split_event(&event).expect("events are struct variants");
        assert_eq!(event_type, event.event_type(), "the serialised tag is the event type");
        let schema_version = schema_version_of(&event).expect("a numeric version");
        let stored = StoredEvent {
            event_id: Uuid::new_v4(),
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: ANA.to_string(),
            aggregate_version: index as u64 + 1,
            event_type: event_type.clone(),
            schema_version,
            timestamp: at(),
            actor: Some(ANA.to_string()),
            correlation_id: Some(Uuid::from_u128(7).to_string()),
            command_id: format!("cmd-{index}"),
            payload: payload.clone(),
        };
        let round_trips = decode_event::<A::Event>(&stored).ok() == Some(event);
        examples.push(Example { aggregate_type: A::TYPE, event_type, schema_version, payload, stored, round_trips });
    }
    examples
}

fn examples() -> Vec<Example> {
    let mut examples = examples_of::<Room>(chain(next_room_event));
    examples.extend(examples_of::<Account>(chain(next_account_event)));
    examples.extend(examples_of::<EmailClaim>(chain(next_email_claim_event)));
    examples.extend(examples_of::<ContactList>(chain(next_contact_list_event)));
    examples.extend(examples_of::<Session>(chain(next_session_event)));
    examples.extend(examples_of::<Invitation>(chain(next_invitation_event)));
    examples.extend(examples_of::<UserSettings>(chain(next_settings_event)));
    examples.extend(examples_of::<Inbox>(chain(next_inbox_event)));
    examples.extend(examples_of::<Webhook>(chain(next_webhook_event)));
    examples.extend(examples_of::<PushDevices>(chain(next_push_event)));
    // Optional fields the chain fills in, left out.
    examples.extend(examples_of::<Room>(vec![
        RoomEvent::RoomCreated {
            host_id: ANA,
            name: RoomName::parse("Open room".to_owned()).expect("valid name"),
            description: RoomDescription::default(),
            password_hash: None,
            max_users: MaxUsers::parse(1).expect("valid maximum"),
            scheduled_at: None,
            duration_minutes: None,
        },
        RoomEvent::RoomRescheduled {
            scheduled_at: at(),
            duration_minutes: None,
            schedule_sequence: 2,
            rescheduled_by: ANA,
        },
        RoomEvent::RoomSettingsUpdated {
            name: None,
            description: None,
            password_hash: None,
            password_cleared: true,
            max_users: None,
        },
    ]));
    examples.extend(examples_of::<Account>(vec![AccountEvent::ProfileUpdated {
        first_name: None,
        last_name: Some(person("Wijaya")),
        avatar: None,
        avatar_removed: true,
        status: None,
    }]));
    // An email invitation: the other side of InvitationIssued's oneOf.
    examples.extend(examples_of::<Invitation>(vec![InvitationEvent::InvitationIssued {
        room_id: RoomId::from_uuid(Uuid::from_u128(0x10)),
        host_id: ANA,
        invitee_id: None,
        email: Some(email()),
    }]));
    examples
}

#[test]
fn an_invitation_names_exactly_one_invitee() {
    let room = RoomId::from_uuid(Uuid::from_u128(0x10));
    let both = json!({ "roomId": room, "hostId": ANA, "inviteeId": BUDI, "email": "ana@example.com" });
    let neither = json!({ "roomId": room, "hostId": ANA });
    for payload in [both, neither] {
        assert!(validate_event("invitation", "InvitationIssued", &payload).is_err(), "{payload}");
    }
}

#[test]
fn every_event_matches_its_schema_and_version() {
    for example in examples() {
        let name = format!("{}/{}", example.aggregate_type, example.event_type);
        let validated = validate_event(example.aggregate_type, &example.event_type, &example.payload);
        assert_eq!(validated, Ok(()), "{name}: {}", example.payload);
        let documented = schema_version(example.aggregate_type, &example.event_type);
        assert_eq!(documented, Ok(u64::from(example.schema_version)), "{name}: x-schema-version");
        assert!(example.round_trips, "{name} decodes back to itself");
    }
}

#[test]
fn every_schema_belongs_to_an_event() {
    let known: BTreeSet<(String, String)> =
        examples().into_iter().map(|e| (e.aggregate_type.to_owned(), e.event_type)).collect();
    let embedded: BTreeSet<(String, String)> =
        EVENT_SCHEMAS.iter().map(|s| (s.aggregate_type.to_owned(), s.event_type.to_owned())).collect();
    assert_eq!(embedded, known, "the embedded schemas are exactly the event types");

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    let mut on_disk = BTreeSet::new();
    for folder in fs::read_dir(&root).expect("events/ exists") {
        let folder = folder.expect("a readable entry").path();
        if !folder.is_dir() {
            assert_eq!(folder.file_name().and_then(|n| n.to_str()), Some("envelope.json"), "stray file {folder:?}");
            continue;
        }
        let aggregate = folder.file_name().and_then(|n| n.to_str()).expect("a UTF-8 name").to_owned();
        for file in fs::read_dir(&folder).expect("a readable folder") {
            let file = file.expect("a readable entry").path();
            assert_eq!(file.extension().and_then(|e| e.to_str()), Some("json"), "stray file {file:?}");
            let event = file.file_stem().and_then(|n| n.to_str()).expect("a UTF-8 name").to_owned();
            on_disk.insert((aggregate.clone(), event));
        }
    }
    assert_eq!(on_disk, known, "every schema file on disk is an event type, and every event type has one");
}

#[test]
fn every_schema_is_valid_draft_2020_12() {
    let sources = EVENT_SCHEMAS.iter().map(|s| s.source).chain([rapat_schemas::ENVELOPE_SCHEMA]);
    for source in sources {
        let schema: Value = serde_json::from_str(source).expect("a schema is JSON");
        assert_eq!(schema["$schema"], json!("https://json-schema.org/draft/2020-12/schema"));
        assert!(jsonschema::meta::is_valid(&schema), "{}", schema["$id"]);
    }
}

/// The schemas repeat the domain's room size limit as a number; this keeps every
/// copy equal to `MaxUsers::LIMIT`, the one the aggregate enforces.
#[test]
fn every_max_users_maximum_is_the_domain_limit() {
    let mut found = Vec::new();
    for schema in EVENT_SCHEMAS {
        let source: Value = serde_json::from_str(schema.source).expect("a schema is JSON");
        let Some(max_users) = source["properties"].get("maxUsers") else { continue };
        assert_eq!(
            max_users["maximum"],
            json!(MaxUsers::LIMIT),
            "{}/{}: maxUsers",
            schema.aggregate_type,
            schema.event_type
        );
        assert_eq!(max_users["minimum"], json!(1), "{}/{}: maxUsers", schema.aggregate_type, schema.event_type);
        found.push(schema.event_type);
    }
    found.sort_unstable();
    assert_eq!(found, ["RoomCreated", "RoomSettingsUpdated"], "the schemas that carry maxUsers");
}

fn check(aggregate_type: &str, event_type: &str, payload: Value, expect_valid: bool) {
    let result = validate_event(aggregate_type, event_type, &payload);
    assert_eq!(result.is_ok(), expect_valid, "{aggregate_type}/{event_type} {payload}: {result:?}");
}

#[test]
fn payloads_that_break_the_contract_are_rejected() {
    let user = ANA.to_string();
    check("room", "ParticipantJoined", json!({ "userId": user }), true);
    check("room", "ParticipantJoined", json!({}), false);
    check("room", "ParticipantJoined", json!({ "userId": "not-a-uuid" }), false);
    check("room", "ParticipantJoined", json!({ "userId": user, "extra": 1 }), false);
    check("room", "ParticipantAudioChanged", json!({ "userId": user, "muted": "yes" }), false);
    check("room", "RoomEnded", json!({ "reason": "done" }), false);
    let created = json!({ "hostId": user, "name": "x", "description": "", "passwordHash": null, "maxUsers": 0, "scheduledAt": null });
    check("room", "RoomCreated", created, false);
    let created = json!({ "hostId": user, "name": "x", "description": "", "passwordHash": null, "maxUsers": 2, "scheduledAt": "soon" });
    check("room", "RoomCreated", created, false);
    // What no read model can store (Postgres refuses a NUL) is outside the contract.
    let created = json!({ "hostId": user, "name": "x", "description": "a\u{0}b", "passwordHash": null, "maxUsers": 2, "scheduledAt": null });
    check("room", "RoomCreated", created, false);
    let created = json!({ "hostId": user, "name": "x", "description": "a\n\tb", "passwordHash": null, "maxUsers": 2, "scheduledAt": "2026-01-01T00:00:00Z" });
    check("room", "RoomCreated", created, true);
    let created = json!({ "hostId": user, "name": "x", "description": "", "passwordHash": null, "maxUsers": 2, "scheduledAt": "-262143-01-01T00:00:00Z" });
    check("room", "RoomCreated", created, false);
    check("room", "RoomSettingsUpdated", json!({ "name": "a\u{1b}b", "passwordCleared": false }), false);
    check("account", "ProfileUpdated", json!({ "avatarRemoved": false, "lastName": "B\u{0}" }), false);
    let v1_registration =
        json!({ "email": "ana@example.com", "passwordHash": "h", "firstName": "Ana", "lastName": "Putri" });
    check("account", "AccountRegistered", v1_registration, false);
    check("account", "StatusChanged", json!({ "status": "sleeping" }), false);
    check("account", "ProfileUpdated", json!({ "avatarRemoved": false, "avatar": "https://example.com/a.png" }), false);
    assert_eq!(
        validate_event("room", "RoomRenamed", &json!({})),
        Err(SchemaError::UnknownEvent { aggregate_type: "room".to_owned(), event_type: "RoomRenamed".to_owned() })
    );
}

#[test]
fn stored_events_and_commits_match_the_envelope() {
    let events: Vec<StoredEvent> = examples().into_iter().map(|example| example.stored).collect();
    for event in &events {
        let value = serde_json::to_value(event).expect("a stored event serialises");
        assert_eq!(validate_stored_event(&value), Ok(()), "{value}");
    }
    let commit = serde_json::to_value(StoredCommit { events }).expect("a commit serialises");
    assert_eq!(validate_commit(&commit), Ok(()));
}

#[test]
fn stored_events_that_break_the_contract_are_rejected() {
    let example = examples().into_iter().next().expect("at least one example");
    let valid = serde_json::to_value(&example.stored).expect("a stored event serialises");
    let broken = |change: fn(&mut Value)| {
        let mut value = valid.clone();
        change(&mut value);
        value
    };
    let cases = [
        broken(|v| v["schemaVersion"] = json!(0)),
        broken(|v| v["timestamp"] = json!("yesterday")),
        broken(|v| v["aggregateType"] = json!("meeting")),
        broken(|v| _ = v.as_object_mut().map(|fields| fields.remove("eventId"))),
        broken(|v| v["payload"]["maxUsers"] = json!("many")),
    ];
    for case in cases {
        assert!(validate_stored_event(&case).is_err(), "{case}");
        assert!(validate_commit(&json!({ "events": [case] })).is_err());
    }
    assert!(validate_commit(&json!({ "events": [] })).is_err(), "a commit holds at least one event");
    assert!(validate_commit(&json!({ "events": [valid], "extra": true })).is_err());
}
