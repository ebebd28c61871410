//! `notifications` (SPEC §6), from the events of rooms, invitations, settings,
//! contact lists and inboxes: one row per (causing event, recipient), its id a
//! UUIDv5 of both, inserted ON CONFLICT DO NOTHING, so redelivery, a second
//! projector and a rebuild all meet the same key. Recipients are decided on this
//! projection's own state (`notification_state.rs`) as it stands at the event.
//! The actor of an event is never told about it.

use rapat_domain::account::AccountEvent;
use rapat_domain::contacts::ContactListEvent;
use rapat_domain::envelope::StoredEvent;
use rapat_domain::inbox::InboxEvent;
use rapat_domain::invitation::InvitationEvent;
use rapat_domain::room::RoomEvent;
use rapat_domain::settings::{Channels, NotificationKind, SettingsEvent};
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use super::notification_state::{self as state, ACTIVE_STATUSES, RoomState};
use super::{ApplyError, aggregate_uuid, decode, stored_name};
use crate::outbox;
use crate::sql::to_i64;

/// The namespace of notification ids. Fixed forever: changing it would give every
/// (event, recipient) a second notification on the next rebuild.
const ID_NAMESPACE: Uuid = Uuid::from_u128(0x5e0c_1f7a_2b94_4d6e_8a31_c4f0_9d27_b613);

/// The id of the notification of `event` for `recipient`.
pub fn notification_id(event: Uuid, recipient: Uuid) -> Uuid {
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(event.as_bytes());
    name[16..].copy_from_slice(recipient.as_bytes());
    Uuid::new_v5(&ID_NAMESPACE, &name)
}

pub(super) async fn apply(tx: &mut PgConnection, stream_sequence: u64, event: &StoredEvent) -> Result<(), ApplyError> {
    apply_many(tx, &[(stream_sequence, event)]).await
}

/// Applies `events` (in stream order, with their stream sequences) as they would
/// apply one by one. Most of a busy stream is room joins and events that tell
/// nobody anything: a run of those between other events costs one statement, which
/// marks the runs' rooms started and names the ones it started (their first join in
/// the run then tells the host and the accepted invitees). Nothing a join tells
/// depends on another join, so the run's order is kept where it matters: each room's
/// first join. Every other event is applied alone, in its place.
pub(super) async fn apply_many(tx: &mut PgConnection, events: &[(u64, &StoredEvent)]) -> Result<(), ApplyError> {
    let mut joins = Vec::new();
    for &(stream_sequence, event) in events {
        let at = Cause { event, stream_sequence };
        match classify(event)? {
            Class::Quiet => {}
            Class::Join(join) => joins.push((at, join)),
            Class::Room(room_id, decoded) => {
                first_joins(tx, &mut joins).await?;
                room_event(tx, &at, room_id, decoded).await?;
            }
            Class::Other => {
                first_joins(tx, &mut joins).await?;
                apply_other(tx, &at).await?;
            }
        }
    }
    first_joins(tx, &mut joins).await
}

/// What an event is to this projection.
enum Class {
    /// Tells nobody anything and changes no state here.
    Quiet,
    /// A participant joined a room.
    Join(Join),
    /// Another room event, decoded.
    Room(Uuid, RoomEvent),
    /// An event of another aggregate type this projection reads.
    Other,
}

struct Join {
    room_id: Uuid,
    user_id: Uuid,
}

fn classify(event: &StoredEvent) -> Result<Class, ApplyError> {
    match event.aggregate_type.as_str() {
        "room" => {}
        "invitation" | "settings" | "contacts" | "inbox" | "account" => return Ok(Class::Other),
        _ => return Ok(Class::Quiet),
    }
    let Some(decoded) = decode::<RoomEvent>(event)? else { return Ok(Class::Quiet) };
    let room_id = aggregate_uuid(event)?;
    // Every variant named: a new one must be placed here on purpose.
    Ok(match decoded {
        RoomEvent::ParticipantJoined { user_id } => Class::Join(Join { room_id, user_id: user_id.as_uuid() }),
        RoomEvent::RoomSettingsUpdated { name: None, .. }
        | RoomEvent::ParticipantLeft { .. }
        | RoomEvent::ParticipantMutedByHost { .. }
        | RoomEvent::ParticipantUnmuteAllowed { .. }
        | RoomEvent::ParticipantAudioChanged { .. }
        | RoomEvent::ParticipantVideoChanged { .. }
        | RoomEvent::ParticipantScreenShareChanged { .. }
        | RoomEvent::RecordingStarted { .. }
        | RoomEvent::RecordingStopped { .. }
        | RoomEvent::TrackRecordingFinished { .. }
        | RoomEvent::TrackRecordingExpired { .. } => Class::Quiet,
        RoomEvent::RoomCreated { .. }
        | RoomEvent::RoomSettingsUpdated { name: Some(_), .. }
        | RoomEvent::ParticipantRemoved { .. }
        | RoomEvent::RoomRescheduled { .. }
        | RoomEvent::RoomCancelled { .. }
        | RoomEvent::MeetingReminderDue { .. }
        | RoomEvent::RoomEnded {} => Class::Room(room_id, decoded),
    })
}

async fn apply_other(tx: &mut PgConnection, at: &Cause<'_>) -> Result<(), ApplyError> {
    super::mail::apply(tx, at.stream_sequence, at.event).await?;
    match at.event.aggregate_type.as_str() {
        "invitation" => invitation_event(tx, at).await,
        "settings" => settings_event(tx, at.event).await,
        "contacts" => contacts_event(tx, at).await,
        "inbox" => inbox_event(tx, at.event).await,
        "account" => account_event(tx, at.event).await,
        _ => Ok(()),
    }
}

/// The joins of a run, then none: only the first join of a room's life starts its
/// meeting, which tells the host and the invitees who accepted.
async fn first_joins(tx: &mut PgConnection, joins: &mut Vec<(Cause<'_>, Join)>) -> Result<(), ApplyError> {
    if joins.is_empty() {
        return Ok(());
    }
    let rooms: Vec<Uuid> = joins.iter().map(|(_, join)| join.room_id).collect();
    let mut started: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE notification_rooms SET started = TRUE WHERE room_id = ANY($1) AND NOT started RETURNING room_id",
    )
    .bind(&rooms)
    .fetch_all(&mut *tx)
    .await?;
    for (at, join) in joins.drain(..) {
        let Some(index) = started.iter().position(|room| *room == join.room_id) else { continue };
        started.swap_remove(index);
        if let Some(room) = state::room(tx, join.room_id).await? {
            let mut recipients = vec![room.host_id];
            recipients.extend(state::invitees(tx, join.room_id, "('accepted')").await?);
            let payload = json!({ "room": room_json(&room), "actor": actor_json(join.user_id) });
            let notice = Notice { kind: NotificationKind::MeetingStarted, actor: join.user_id, payload };
            notify(tx, &at, &notice, &recipients).await?;
        }
    }
    Ok(())
}

/// The event a notification comes from.
struct Cause<'a> {
    event: &'a StoredEvent,
    stream_sequence: u64,
}

async fn room_event(
    tx: &mut PgConnection,
    at: &Cause<'_>,
    room_id: Uuid,
    decoded: RoomEvent,
) -> Result<(), ApplyError> {
    match decoded {
        RoomEvent::RoomCreated { host_id, name, scheduled_at, .. } => {
            sqlx::query(
                "INSERT INTO notification_rooms (room_id, host_id, name, scheduled_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (room_id) DO NOTHING",
            )
            .bind(room_id)
            .bind(host_id.as_uuid())
            .bind(String::from(name))
            .bind(scheduled_at)
            .execute(&mut *tx)
            .await?;
            state::arm_reminders(tx, room_id, at.event.timestamp).await?;
        }
        RoomEvent::RoomSettingsUpdated { name: Some(name), .. } => {
            sqlx::query("UPDATE notification_rooms SET name = $2 WHERE room_id = $1")
                .bind(room_id)
                .bind(String::from(name))
                .execute(&mut *tx)
                .await?;
        }
        RoomEvent::ParticipantRemoved { user_id, removed_by } => {
            if let Some(room) = state::room(tx, room_id).await? {
                let payload = json!({ "room": room_json(&room), "actor": actor_json(removed_by.as_uuid()) });
                let notice = Notice { kind: NotificationKind::RemovedFromRoom, actor: removed_by.as_uuid(), payload };
                notify(tx, at, &notice, &[user_id.as_uuid()]).await?;
            }
        }
        RoomEvent::RoomRescheduled { scheduled_at, schedule_sequence, rescheduled_by, .. } => {
            let sequence = i64::from(schedule_sequence);
            sqlx::query("UPDATE notification_rooms SET scheduled_at = $2, schedule_sequence = $3 WHERE room_id = $1")
                .bind(room_id)
                .bind(scheduled_at)
                .bind(sequence)
                .execute(&mut *tx)
                .await?;
            // The old schedule's timers go, the new one's come.
            state::arm_reminders(tx, room_id, at.event.timestamp).await?;
            let change = ScheduleChange { kind: NotificationKind::MeetingRescheduled, actor: rescheduled_by.as_uuid() };
            let sequence = json!({ "scheduleSequence": schedule_sequence });
            tell_invitees(tx, at, room_id, change, sequence).await?;
        }
        RoomEvent::RoomCancelled { cancelled_by } => {
            sqlx::query("UPDATE notification_rooms SET ended = TRUE WHERE room_id = $1")
                .bind(room_id)
                .execute(&mut *tx)
                .await?;
            state::arm_reminders(tx, room_id, at.event.timestamp).await?;
            let change = ScheduleChange { kind: NotificationKind::MeetingCancelled, actor: cancelled_by.as_uuid() };
            tell_invitees(tx, at, room_id, change, json!({})).await?;
        }
        RoomEvent::MeetingReminderDue { recipient_id, schedule_sequence, due_at, late } => {
            let recipient = recipient_id.as_uuid();
            let sequence = i64::from(schedule_sequence);
            // Decided on this projection's state at the event, so a rebuild agrees:
            // only the host and invitees who have not declined nor been revoked.
            let concerned = state::is_host_or_active_invitee(tx, room_id, recipient).await?;
            state::reminder_fired(tx, room_id, sequence, recipient).await?;
            if concerned && let Some(room) = state::room(tx, room_id).await? {
                let payload = json!({
                    "room": room_json(&room),
                    "scheduledAt": room.scheduled_at,
                    "scheduleSequence": schedule_sequence,
                    "dueAt": due_at,
                    "late": late,
                });
                // Nobody acted: the system fires reminders.
                let notice = Notice { kind: NotificationKind::MeetingReminder, actor: Uuid::nil(), payload };
                notify(tx, at, &notice, &[recipient]).await?;
            }
        }
        RoomEvent::RoomEnded {} => {
            sqlx::query("UPDATE notification_rooms SET ended = TRUE WHERE room_id = $1")
                .bind(room_id)
                .execute(&mut *tx)
                .await?;
            state::arm_reminders(tx, room_id, at.event.timestamp).await?;
        }
        // Joins go by runs (`first_joins`); the rest tell nobody (`classify`).
        _ => {}
    }
    Ok(())
}

async fn invitation_event(tx: &mut PgConnection, at: &Cause<'_>) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<InvitationEvent>(at.event)? else { return Ok(()) };
    let invitation = aggregate_uuid(at.event)?;
    match decoded {
        InvitationEvent::InvitationIssued { room_id, host_id, invitee_id, .. } => {
            // Issued again to an email address already bound: the bound account
            // is still the invitee.
            let invitee: Option<Uuid> = sqlx::query_scalar(
                "INSERT INTO notification_invitees (invitation_id, room_id, invitee_id, status) \
                 VALUES ($1, $2, $3, 'pending') ON CONFLICT (invitation_id) DO UPDATE \
                 SET status = 'pending', invitee_id = COALESCE(EXCLUDED.invitee_id, notification_invitees.invitee_id) \
                 RETURNING invitee_id",
            )
            .bind(invitation)
            .bind(room_id.as_uuid())
            .bind(invitee_id.map(|id| id.as_uuid()))
            .fetch_one(&mut *tx)
            .await?;
            if let Some(invitee) = invitee {
                invited(tx, at, room_id.as_uuid(), host_id.as_uuid(), invitee).await?;
            }
            state::arm_reminders(tx, room_id.as_uuid(), at.event.timestamp).await?;
        }
        InvitationEvent::InvitationBoundToAccount { invitee_id } => {
            let bound: Option<(Uuid, String)> = sqlx::query_as(
                "UPDATE notification_invitees SET invitee_id = $2 WHERE invitation_id = $1 RETURNING room_id, status",
            )
            .bind(invitation)
            .bind(invitee_id.as_uuid())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((room_id, status)) = bound {
                if status == "pending"
                    && let Some(room) = state::room(tx, room_id).await?
                {
                    invited(tx, at, room_id, room.host_id, invitee_id.as_uuid()).await?;
                }
                state::arm_reminders(tx, room_id, at.event.timestamp).await?;
            }
        }
        InvitationEvent::InvitationAccepted { invitee_id } => {
            answered(tx, at, invitation, invitee_id.as_uuid(), "accepted", NotificationKind::InvitationAccepted)
                .await?;
        }
        InvitationEvent::InvitationDeclined { invitee_id } => {
            answered(tx, at, invitation, invitee_id.as_uuid(), "declined", NotificationKind::InvitationDeclined)
                .await?;
        }
        InvitationEvent::InvitationRevoked { .. } => {
            let room: Option<Uuid> = sqlx::query_scalar(
                "UPDATE notification_invitees SET status = 'revoked' WHERE invitation_id = $1 RETURNING room_id",
            )
            .bind(invitation)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(room) = room {
                state::arm_reminders(tx, room, at.event.timestamp).await?;
            }
        }
    }
    Ok(())
}

/// `room_invitation` for `invitee`, from the host.
async fn invited(
    tx: &mut PgConnection,
    at: &Cause<'_>,
    room: Uuid,
    host: Uuid,
    invitee: Uuid,
) -> Result<(), ApplyError> {
    let Some(room) = state::room(tx, room).await? else { return Ok(()) };
    let payload = json!({
        "room": room_json(&room),
        "actor": actor_json(host),
        "invitationId": at.event.aggregate_id,
        "scheduledAt": room.scheduled_at,
    });
    let notice = Notice { kind: NotificationKind::RoomInvitation, actor: host, payload };
    notify(tx, at, &notice, &[invitee]).await
}

/// An invitee answered: record it and tell the host.
async fn answered(
    tx: &mut PgConnection,
    at: &Cause<'_>,
    invitation: Uuid,
    invitee: Uuid,
    status: &str,
    kind: NotificationKind,
) -> Result<(), ApplyError> {
    let room: Option<Uuid> = sqlx::query_scalar(
        "UPDATE notification_invitees SET status = $2, invitee_id = $3 WHERE invitation_id = $1 RETURNING room_id",
    )
    .bind(invitation)
    .bind(status)
    .bind(invitee)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(room_id) = room else { return Ok(()) };
    state::arm_reminders(tx, room_id, at.event.timestamp).await?;
    if let Some(room) = state::room(tx, room_id).await? {
        let payload = json!({
            "room": room_json(&room),
            "actor": actor_json(invitee),
            "invitationId": at.event.aggregate_id,
        });
        let notice = Notice { kind, actor: invitee, payload };
        notify(tx, at, &notice, &[room.host_id]).await?;
    }
    Ok(())
}

async fn settings_event(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(SettingsEvent::UserSettingsUpdated { user_id, reminder_minutes, notifications, .. }) =
        decode::<SettingsEvent>(event)?
    else {
        return Ok(());
    };
    let channels = serde_json::to_value(&notifications)
        .map_err(|error| ApplyError::Poison(format!("settings channels: {error}")))?;
    let minutes = reminder_minutes.map(|minutes| i32::try_from(minutes.get()).unwrap_or(i32::MAX));
    sqlx::query(
        "INSERT INTO notification_settings (user_id, reminder_minutes, channels) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id) DO UPDATE SET \
         reminder_minutes = COALESCE(EXCLUDED.reminder_minutes, notification_settings.reminder_minutes), \
         channels = notification_settings.channels || EXCLUDED.channels",
    )
    .bind(user_id.as_uuid())
    .bind(minutes)
    .bind(channels)
    .execute(&mut *tx)
    .await?;
    if minutes.is_some() {
        state::arm_reminders_of_user(tx, user_id.as_uuid(), event.timestamp).await?;
    }
    Ok(())
}

async fn contacts_event(tx: &mut PgConnection, at: &Cause<'_>) -> Result<(), ApplyError> {
    if let Some(ContactListEvent::ContactAdded { owner_id, contact_id }) = decode::<ContactListEvent>(at.event)? {
        let payload = json!({ "actor": actor_json(owner_id.as_uuid()) });
        let notice = Notice { kind: NotificationKind::ContactAdded, actor: owner_id.as_uuid(), payload };
        notify(tx, at, &notice, &[contact_id.as_uuid()]).await?;
    }
    Ok(())
}

/// Users' names, for the `actor` of the notifications they cause.
async fn account_event(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<AccountEvent>(event)? else { return Ok(()) };
    let user = aggregate_uuid(event)?;
    match decoded {
        AccountEvent::AccountRegistered { first_name, last_name, .. } => {
            sqlx::query(
                "INSERT INTO notification_users (user_id, first_name, last_name) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name",
            )
            .bind(user)
            .bind(String::from(first_name))
            .bind(String::from(last_name))
            .execute(tx)
            .await?;
        }
        AccountEvent::ProfileUpdated { first_name, last_name, .. } if first_name.is_some() || last_name.is_some() => {
            sqlx::query(
                "UPDATE notification_users SET first_name = COALESCE($2, first_name), \
                 last_name = COALESCE($3, last_name) WHERE user_id = $1",
            )
            .bind(user)
            .bind(first_name.map(String::from))
            .bind(last_name.map(String::from))
            .execute(tx)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

async fn inbox_event(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<InboxEvent>(event)? else { return Ok(()) };
    match decoded {
        InboxEvent::NotificationsRead { user_id, ids } => {
            sqlx::query(
                "UPDATE notifications SET read_at = $3 WHERE recipient_id = $1 AND id = ANY($2) AND read_at IS NULL",
            )
            .bind(user_id.as_uuid())
            .bind(&ids)
            .bind(event.timestamp)
            .execute(tx)
            .await?;
        }
        InboxEvent::AllNotificationsRead { user_id } => {
            sqlx::query("UPDATE notifications SET read_at = $2 WHERE recipient_id = $1 AND read_at IS NULL")
                .bind(user_id.as_uuid())
                .bind(event.timestamp)
                .execute(tx)
                .await?;
        }
    }
    Ok(())
}

/// What one event tells its recipients.
struct Notice {
    kind: NotificationKind,
    /// Who did it: never told.
    actor: Uuid,
    payload: Value,
}

/// Stores `notice` once for each recipient but the actor, with the channels the
/// recipient's settings give its kind (stored even when in-app is off: the other
/// channels deliver from these rows).
async fn notify(tx: &mut PgConnection, at: &Cause<'_>, notice: &Notice, recipients: &[Uuid]) -> Result<(), ApplyError> {
    let mut recipients: Vec<Uuid> = recipients.iter().copied().filter(|id| *id != notice.actor).collect();
    recipients.sort_unstable();
    recipients.dedup();
    if recipients.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = recipients.iter().map(|recipient| notification_id(at.event.event_id, *recipient)).collect();
    let mut payload = notice.payload.clone();
    // The actor's name as it was at the event (a later rename does not rewrite it).
    let name: Option<String> =
        sqlx::query_scalar("SELECT btrim(first_name || ' ' || last_name) FROM notification_users WHERE user_id = $1")
            .bind(notice.actor)
            .fetch_optional(&mut *tx)
            .await?;
    if let (Some(name), Some(actor)) = (name, payload.get_mut("actor").and_then(Value::as_object_mut)) {
        actor.insert("name".to_owned(), Value::String(name));
    }
    let kind = stored_name(&notice.kind)?;
    let Channels { in_app, email, push } = Channels::DEFAULT;
    let added: Vec<(Uuid, Uuid, bool, bool)> = sqlx::query_as(
        "INSERT INTO notifications (id, recipient_id, kind, created_at, payload, event_id, stream_sequence, \
         in_app, email, push) \
         SELECT n.id, n.recipient, $3, $4, $5, $6, $7, \
         COALESCE((s.channels -> $3 ->> 'inApp')::boolean, $8), \
         COALESCE((s.channels -> $3 ->> 'email')::boolean, $9), \
         COALESCE((s.channels -> $3 ->> 'push')::boolean, $10) \
         FROM UNNEST($1::uuid[], $2::uuid[]) AS n(id, recipient) \
         LEFT JOIN notification_settings s ON s.user_id = n.recipient \
         ON CONFLICT (id) DO NOTHING \
         RETURNING id, recipient_id, email, push",
    )
    .bind(&ids)
    .bind(&recipients)
    .bind(&kind)
    .bind(at.event.timestamp)
    .bind(&payload)
    .bind(at.event.event_id)
    .bind(to_i64(at.stream_sequence))
    .bind(in_app)
    .bind(email)
    .bind(push)
    .fetch_all(&mut *tx)
    .await?;
    // Only the rows this call stored (a redelivered event adds none) owe messages.
    let mut owed = Vec::new();
    for (notification, recipient, email, push) in &added {
        for (channel, on) in [("email", email), ("push", push)] {
            if *on {
                owed.push(outbox::NewDelivery {
                    id: outbox::delivery_id(*notification, channel),
                    channel,
                    kind: &kind,
                    recipient_id: Some(*recipient),
                    address: None,
                    notification_id: Some(*notification),
                    payload: &payload,
                    event_id: at.event.event_id,
                    stream_sequence: at.stream_sequence,
                    created_at: at.event.timestamp,
                });
            }
        }
    }
    outbox::enqueue_all(tx, &owed).await?;
    Ok(())
}

/// A host's change to a meeting's schedule.
struct ScheduleChange {
    kind: NotificationKind,
    actor: Uuid,
}

/// Tells the invitees who have not declined about `change`, with the room, the
/// schedule as it now stands, and `extra`'s fields.
async fn tell_invitees(
    tx: &mut PgConnection,
    at: &Cause<'_>,
    room_id: Uuid,
    change: ScheduleChange,
    extra: Value,
) -> Result<(), ApplyError> {
    let Some(room) = state::room(tx, room_id).await? else { return Ok(()) };
    let recipients = state::invitees(tx, room_id, ACTIVE_STATUSES).await?;
    let mut payload = json!({
        "room": room_json(&room),
        "actor": actor_json(change.actor),
        "scheduledAt": room.scheduled_at,
    });
    if let (Some(payload), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        payload.extend(extra);
    }
    let notice = Notice { kind: change.kind, actor: change.actor, payload };
    notify(tx, at, &notice, &recipients).await
}

fn room_json(room: &RoomState) -> Value {
    json!({ "id": room.room_id, "name": room.name })
}

fn actor_json(actor: Uuid) -> Value {
    json!({ "id": actor })
}
