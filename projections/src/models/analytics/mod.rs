//! Room analytics per room and UTC day, from room events only.
//!
//! Definitions (what the numbers mean, and what `tests/projections/analytics.rs`
//! recomputes independently from the stream):
//!
//! - A **stay** is one participant's time in a room: it opens at `ParticipantJoined`
//!   and closes at that user's `ParticipantLeft` or `ParticipantRemoved`, or at
//!   `RoomEnded`. A join while the user's stay is open, or a leave without one,
//!   changes nothing. Times are the events' envelope timestamps.
//! - **Participant time** of a day is the part of every closed stay that lies in that
//!   UTC day: a stay crossing midnight is split between the days. An open stay
//!   counts once it closes.
//! - **Concurrency** is the number of open stays of the room. A **meeting** starts
//!   at a join that takes it from 0 to 1 and ends when it comes back to 0 (the last
//!   stay closes) or at `RoomEnded`. A meeting counts on the UTC day it started,
//!   and so does its length once it has ended; the average meeting length of a day
//!   is the summed length of its ended meetings over their number.
//! - **Peak concurrency** of a day is the highest concurrency at any instant of that
//!   day, stays carried over from earlier days included.
//! - **Unique participants** of a day are the users with a stay open at some instant
//!   of that day.
//!
//! Media toggles, creation and settings changes count nothing. Days that open stays
//! run through without any join, leave, removal or end of the room are filled in
//! (peak and presence) by the room's next such event: they are always complete once
//! the stays have closed.
//!
//! The running state is in tables (`analytics_open_stays`,
//! `analytics_open_meetings`). A batch of events is folded in memory (`fold.rs`, no
//! SQL) from the rows it starts from, loaded with one query per table, and what it
//! leaves is written with one set-based statement, inside the projector's
//! transaction, whose checkpoint rules make each event apply exactly once. A batch
//! of one event goes the same way, so a rebuild in big batches and the live
//! projector cannot disagree on what an event does.

mod fold;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rapat_domain::envelope::StoredEvent;
use rapat_domain::room::RoomEvent;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{ApplyError, aggregate_uuid, decode};
use fold::{Change, Event, Folded, Loaded, OpenMeeting, fold, rooms_to_load, stays_to_load};

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    apply_many(tx, &[event]).await
}

/// Applies `events` (in stream order) as they would apply one by one, with at most
/// three statements: load the open meetings, load the open stays, write.
pub(super) async fn apply_many(tx: &mut PgConnection, events: &[&StoredEvent]) -> Result<(), ApplyError> {
    let mut counted = Vec::with_capacity(events.len());
    for event in events {
        if let Some(change) = change_of(event)? {
            counted.push(Event { room: aggregate_uuid(event)?, at: event.timestamp, change });
        }
    }
    if counted.is_empty() {
        return Ok(());
    }
    let loaded = load(tx, &counted).await?;
    write(tx, &fold(loaded, &counted)).await
}

/// What `event` does to the counts; `None` for the events that count nothing.
fn change_of(event: &StoredEvent) -> Result<Option<Change>, ApplyError> {
    let Some(decoded) = decode::<RoomEvent>(event)? else { return Ok(None) };
    Ok(match decoded {
        RoomEvent::ParticipantJoined { user_id } => Some(Change::Join(user_id.as_uuid())),
        RoomEvent::ParticipantLeft { user_id } | RoomEvent::ParticipantRemoved { user_id, .. } => {
            Some(Change::Leave(user_id.as_uuid()))
        }
        RoomEvent::RoomEnded {} => Some(Change::End),
        RoomEvent::RoomCreated { .. }
        | RoomEvent::RoomSettingsUpdated { .. }
        | RoomEvent::ParticipantMutedByHost { .. }
        | RoomEvent::ParticipantUnmuteAllowed { .. }
        | RoomEvent::ParticipantAudioChanged { .. }
        | RoomEvent::ParticipantVideoChanged { .. }
        | RoomEvent::ParticipantScreenShareChanged { .. }
        | RoomEvent::RoomRescheduled { .. }
        // A cancelled room never met; its `RoomEnded` follows and closes nothing.
        | RoomEvent::RoomCancelled { .. }
        | RoomEvent::MeetingReminderDue { .. }
        | RoomEvent::RecordingStarted { .. }
        | RoomEvent::RecordingStopped { .. }
        | RoomEvent::TrackRecordingFinished { .. }
        | RoomEvent::TrackRecordingExpired { .. } => None,
    })
}

/// The rows the batch starts from: the open meetings of its rooms, then the open
/// stays it reads (which depend on those meetings: `fold::stays_to_load`).
async fn load(tx: &mut PgConnection, events: &[Event]) -> Result<Loaded, ApplyError> {
    let rooms = rooms_to_load(events);
    let rows = sqlx::query(
        "SELECT room_id, started_at, concurrency, last_day FROM analytics_open_meetings WHERE room_id = ANY($1)",
    )
    .bind(&rooms)
    .fetch_all(&mut *tx)
    .await?;
    let mut loaded = Loaded::default();
    for row in rows {
        let meeting = OpenMeeting {
            started_at: row.try_get("started_at")?,
            concurrency: row.try_get("concurrency")?,
            last_day: row.try_get("last_day")?,
        };
        loaded.meetings.insert(row.try_get("room_id")?, meeting);
    }
    let stays = stays_to_load(events, &loaded.meetings);
    if stays.is_empty() {
        return Ok(loaded);
    }
    // Both halves use the primary key (room_id, user_id).
    let rows = sqlx::query(
        "SELECT room_id, user_id, joined_at FROM analytics_open_stays WHERE room_id = ANY($1) \
         UNION SELECT room_id, user_id, joined_at FROM analytics_open_stays \
         WHERE (room_id, user_id) IN (SELECT * FROM UNNEST($2::uuid[], $3::uuid[]))",
    )
    .bind(&stays.whole_rooms)
    .bind(&stays.rooms_of_pairs)
    .bind(&stays.users_of_pairs)
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let (room, user, joined_at): (Uuid, Uuid, DateTime<Utc>) =
            (row.try_get("room_id")?, row.try_get("user_id")?, row.try_get("joined_at")?);
        loaded.stays.entry(room).or_insert_with(BTreeMap::new).insert(user, joined_at);
    }
    Ok(loaded)
}

/// Writes what the fold left in one statement: stays and meetings closed and
/// saved (no key is in both), who was present, and what each room-day gains (sums,
/// and the peak as the greater of the two).
async fn write(tx: &mut PgConnection, folded: &Folded) -> Result<(), ApplyError> {
    if *folded == Folded::default() {
        return Ok(());
    }
    let days: Vec<(Uuid, NaiveDate)> = folded.days.keys().copied().collect();
    let deltas: Vec<_> = folded.days.values().collect();
    let meetings = &folded.meetings_saved;
    sqlx::query(
        "WITH closed AS (\
           DELETE FROM analytics_open_stays \
           WHERE (room_id, user_id) IN (SELECT * FROM UNNEST($1::uuid[], $2::uuid[]))), \
         opened AS (\
           INSERT INTO analytics_open_stays (room_id, user_id, joined_at) \
           SELECT * FROM UNNEST($3::uuid[], $4::uuid[], $5::timestamptz[]) \
           ON CONFLICT (room_id, user_id) DO UPDATE SET joined_at = EXCLUDED.joined_at), \
         ended AS (\
           DELETE FROM analytics_open_meetings WHERE room_id = ANY($6)), \
         saved AS (\
           INSERT INTO analytics_open_meetings (room_id, started_at, concurrency, last_day) \
           SELECT * FROM UNNEST($7::uuid[], $8::timestamptz[], $9::int4[], $10::date[]) \
           ON CONFLICT (room_id) DO UPDATE SET started_at = EXCLUDED.started_at, \
           concurrency = EXCLUDED.concurrency, last_day = EXCLUDED.last_day), \
         present AS (\
           INSERT INTO analytics_room_participants (room_id, day, user_id) \
           SELECT * FROM UNNEST($11::uuid[], $12::date[], $13::uuid[]) ON CONFLICT DO NOTHING) \
         INSERT INTO analytics_room_days AS d \
           (room_id, day, meetings, meetings_ended, meeting_micros, participant_micros, peak_concurrency) \
         SELECT * FROM UNNEST($14::uuid[], $15::date[], $16::int4[], $17::int4[], $18::int8[], $19::int8[], \
           $20::int4[]) \
         ON CONFLICT (room_id, day) DO UPDATE SET \
           meetings = d.meetings + EXCLUDED.meetings, \
           meetings_ended = d.meetings_ended + EXCLUDED.meetings_ended, \
           meeting_micros = d.meeting_micros + EXCLUDED.meeting_micros, \
           participant_micros = d.participant_micros + EXCLUDED.participant_micros, \
           peak_concurrency = GREATEST(d.peak_concurrency, EXCLUDED.peak_concurrency)",
    )
    .bind(folded.stays_closed.iter().map(|(room, _)| *room).collect::<Vec<_>>())
    .bind(folded.stays_closed.iter().map(|(_, user)| *user).collect::<Vec<_>>())
    .bind(folded.stays_opened.iter().map(|(room, _, _)| *room).collect::<Vec<_>>())
    .bind(folded.stays_opened.iter().map(|(_, user, _)| *user).collect::<Vec<_>>())
    .bind(folded.stays_opened.iter().map(|(_, _, at)| *at).collect::<Vec<_>>())
    .bind(&folded.meetings_ended)
    .bind(meetings.iter().map(|(room, _)| *room).collect::<Vec<_>>())
    .bind(meetings.iter().map(|(_, meeting)| meeting.started_at).collect::<Vec<_>>())
    .bind(meetings.iter().map(|(_, meeting)| meeting.concurrency).collect::<Vec<_>>())
    .bind(meetings.iter().map(|(_, meeting)| meeting.last_day).collect::<Vec<_>>())
    .bind(folded.present.iter().map(|(room, _, _)| *room).collect::<Vec<_>>())
    .bind(folded.present.iter().map(|(_, day, _)| *day).collect::<Vec<_>>())
    .bind(folded.present.iter().map(|(_, _, user)| *user).collect::<Vec<_>>())
    .bind(days.iter().map(|(room, _)| *room).collect::<Vec<_>>())
    .bind(days.iter().map(|(_, day)| *day).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.meetings).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.meetings_ended).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.meeting_micros).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.participant_micros).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.peak).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
