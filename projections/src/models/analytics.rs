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
//! `analytics_open_meetings`), so each event is applied alone inside the projector's
//! transaction, and the checkpoint rules make it apply exactly once.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use rapat_domain::envelope::StoredEvent;
use rapat_domain::room::RoomEvent;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{ApplyError, aggregate_uuid, decode};

/// What an event does to the counts.
enum Change {
    Join(Uuid),
    Leave(Uuid),
    End,
}

/// A meeting under way: the room's row in `analytics_open_meetings`.
#[derive(Clone, Copy)]
struct OpenMeeting {
    started_at: DateTime<Utc>,
    concurrency: i32,
    last_day: NaiveDate,
}

/// What one room-day row gains from one event.
#[derive(Default)]
struct DayDelta {
    meetings: i32,
    meetings_ended: i32,
    meeting_micros: i64,
    participant_micros: i64,
    peak: i32,
}

/// Everything one event adds to the per-day tables.
#[derive(Default)]
struct Changes {
    days: BTreeMap<NaiveDate, DayDelta>,
    present: BTreeSet<(NaiveDate, Uuid)>,
}

impl Changes {
    fn day(&mut self, day: NaiveDate) -> &mut DayDelta {
        self.days.entry(day).or_default()
    }

    fn peak(&mut self, day: NaiveDate, concurrency: i32) {
        let delta = self.day(day);
        delta.peak = delta.peak.max(concurrency);
    }

    fn stay_closed(&mut self, joined_at: DateTime<Utc>, left_at: DateTime<Utc>) {
        for (day, micros) in split_by_day(joined_at, left_at) {
            self.day(day).participant_micros += micros;
        }
    }

    fn meeting_ended(&mut self, started_at: DateTime<Utc>, ended_at: DateTime<Utc>) {
        let delta = self.day(started_at.date_naive());
        delta.meetings_ended += 1;
        delta.meeting_micros += micros_between(started_at, ended_at);
    }
}

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    let Some(decoded) = decode::<RoomEvent>(event)? else { return Ok(()) };
    let change = match decoded {
        RoomEvent::ParticipantJoined { user_id } => Change::Join(user_id.as_uuid()),
        RoomEvent::ParticipantLeft { user_id } | RoomEvent::ParticipantRemoved { user_id, .. } => {
            Change::Leave(user_id.as_uuid())
        }
        RoomEvent::RoomEnded {} => Change::End,
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
        | RoomEvent::TrackRecordingExpired { .. } => return Ok(()),
    };
    let room = aggregate_uuid(event)?;
    let at = event.timestamp;
    let today = at.date_naive();
    let meeting = load_meeting(tx, room).await?;
    let mut changes = Changes::default();
    if let Some(meeting) = meeting
        && today > meeting.last_day
    {
        carry_over(tx, room, meeting, today, &mut changes).await?;
    }
    // A timestamp older than the room's last one (clocks of two gateways) must not
    // move the room's day back: those days were already carried over.
    let last_day = meeting.map_or(today, |meeting| meeting.last_day.max(today));

    let next = match change {
        Change::Join(user) => {
            let opened = sqlx::query(
                "INSERT INTO analytics_open_stays (room_id, user_id, joined_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (room_id, user_id) DO NOTHING",
            )
            .bind(room)
            .bind(user)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if opened == 0 {
                meeting.map(|meeting| OpenMeeting { last_day, ..meeting })
            } else {
                let (started_at, concurrency) = match meeting {
                    Some(meeting) => (meeting.started_at, meeting.concurrency + 1),
                    None => {
                        changes.day(today).meetings += 1;
                        (at, 1)
                    }
                };
                changes.peak(today, concurrency);
                changes.present.insert((today, user));
                Some(OpenMeeting { started_at, concurrency, last_day })
            }
        }
        Change::Leave(user) => {
            let joined_at: Option<DateTime<Utc>> = sqlx::query_scalar(
                "DELETE FROM analytics_open_stays WHERE room_id = $1 AND user_id = $2 RETURNING joined_at",
            )
            .bind(room)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
            match (joined_at, meeting) {
                (None, meeting) => meeting.map(|meeting| OpenMeeting { last_day, ..meeting }),
                (Some(joined_at), Some(meeting)) => {
                    changes.stay_closed(joined_at, at);
                    if meeting.concurrency <= 1 {
                        changes.meeting_ended(meeting.started_at, at);
                        None
                    } else {
                        Some(OpenMeeting { concurrency: meeting.concurrency - 1, last_day, ..meeting })
                    }
                }
                // An open stay always has its meeting; should the state ever
                // disagree, the stay still counts.
                (Some(joined_at), None) => {
                    changes.stay_closed(joined_at, at);
                    None
                }
            }
        }
        Change::End => {
            let stays = sqlx::query("DELETE FROM analytics_open_stays WHERE room_id = $1 RETURNING joined_at")
                .bind(room)
                .fetch_all(&mut *tx)
                .await?;
            for stay in stays {
                changes.stay_closed(stay.try_get("joined_at")?, at);
            }
            if let Some(meeting) = meeting {
                changes.meeting_ended(meeting.started_at, at);
            }
            None
        }
    };

    write_changes(tx, room, &changes).await?;
    save_meeting(tx, room, meeting.is_some(), next).await
}

/// Stays open since before `today` were in the room on every day in between, at the
/// room's concurrency: those days get their presence and peak now.
async fn carry_over(
    tx: &mut PgConnection,
    room: Uuid,
    meeting: OpenMeeting,
    today: NaiveDate,
    changes: &mut Changes,
) -> Result<(), ApplyError> {
    let users: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM analytics_open_stays WHERE room_id = $1")
        .bind(room)
        .fetch_all(&mut *tx)
        .await?;
    let mut day = meeting.last_day;
    while day < today {
        let Some(next) = day.succ_opt() else { break };
        day = next;
        changes.peak(day, meeting.concurrency);
        for user in &users {
            changes.present.insert((day, *user));
        }
    }
    Ok(())
}

async fn load_meeting(tx: &mut PgConnection, room: Uuid) -> Result<Option<OpenMeeting>, ApplyError> {
    let row = sqlx::query("SELECT started_at, concurrency, last_day FROM analytics_open_meetings WHERE room_id = $1")
        .bind(room)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(OpenMeeting {
        started_at: row.try_get("started_at")?,
        concurrency: row.try_get("concurrency")?,
        last_day: row.try_get("last_day")?,
    }))
}

async fn save_meeting(
    tx: &mut PgConnection,
    room: Uuid,
    existed: bool,
    next: Option<OpenMeeting>,
) -> Result<(), ApplyError> {
    match next {
        Some(meeting) => {
            sqlx::query(
                "INSERT INTO analytics_open_meetings (room_id, started_at, concurrency, last_day) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (room_id) DO UPDATE SET started_at = EXCLUDED.started_at, \
                 concurrency = EXCLUDED.concurrency, last_day = EXCLUDED.last_day",
            )
            .bind(room)
            .bind(meeting.started_at)
            .bind(meeting.concurrency)
            .bind(meeting.last_day)
            .execute(&mut *tx)
            .await?;
        }
        None if existed => {
            sqlx::query("DELETE FROM analytics_open_meetings WHERE room_id = $1").bind(room).execute(&mut *tx).await?;
        }
        None => {}
    }
    Ok(())
}

/// Adds `changes` to the per-day tables in one statement (one round trip per event
/// is what makes a replay of a long history fast).
async fn write_changes(tx: &mut PgConnection, room: Uuid, changes: &Changes) -> Result<(), ApplyError> {
    if changes.days.is_empty() && changes.present.is_empty() {
        return Ok(());
    }
    let days: Vec<NaiveDate> = changes.days.keys().copied().collect();
    let deltas: Vec<&DayDelta> = changes.days.values().collect();
    sqlx::query(
        "WITH present AS (\
           INSERT INTO analytics_room_participants (room_id, day, user_id) \
           SELECT $1, * FROM UNNEST($8::date[], $9::uuid[]) ON CONFLICT DO NOTHING) \
         INSERT INTO analytics_room_days AS d \
           (room_id, day, meetings, meetings_ended, meeting_micros, participant_micros, peak_concurrency) \
         SELECT $1, * FROM UNNEST($2::date[], $3::int4[], $4::int4[], $5::int8[], $6::int8[], $7::int4[]) \
         ON CONFLICT (room_id, day) DO UPDATE SET \
           meetings = d.meetings + EXCLUDED.meetings, \
           meetings_ended = d.meetings_ended + EXCLUDED.meetings_ended, \
           meeting_micros = d.meeting_micros + EXCLUDED.meeting_micros, \
           participant_micros = d.participant_micros + EXCLUDED.participant_micros, \
           peak_concurrency = GREATEST(d.peak_concurrency, EXCLUDED.peak_concurrency)",
    )
    .bind(room)
    .bind(&days)
    .bind(deltas.iter().map(|d| d.meetings).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.meetings_ended).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.meeting_micros).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.participant_micros).collect::<Vec<_>>())
    .bind(deltas.iter().map(|d| d.peak).collect::<Vec<_>>())
    .bind(changes.present.iter().map(|(day, _)| *day).collect::<Vec<_>>())
    .bind(changes.present.iter().map(|(_, user)| *user).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Microseconds from `from` to `to`; 0 if `to` is not later (a clock step back
/// must not subtract time).
fn micros_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX).max(0)
}

/// The time from `from` to `to` cut at UTC midnights: `(day, microseconds)` for
/// every day it touches, in order.
fn split_by_day(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(NaiveDate, i64)> {
    let mut parts = Vec::new();
    let mut start = from;
    while start < to {
        let day = start.date_naive();
        let next_midnight = day.succ_opt().and_then(|next| next.and_hms_opt(0, 0, 0)).map(|naive| naive.and_utc());
        let end = match next_midnight {
            Some(midnight) if midnight < to => midnight,
            _ => to,
        };
        parts.push((day, micros_between(start, end)));
        start = end;
    }
    if parts.is_empty() {
        // A zero-length stay still touched its day.
        parts.push((from.date_naive(), 0));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("a timestamp").with_timezone(&Utc)
    }

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
    }

    #[test]
    fn a_stay_is_split_at_each_utc_midnight() {
        let hour = TimeDelta::hours(1).num_microseconds().expect("fits");
        assert_eq!(
            split_by_day(at("2024-05-01T10:00:00Z"), at("2024-05-01T12:00:00Z")),
            vec![(day("2024-05-01"), 2 * hour)]
        );
        assert_eq!(
            split_by_day(at("2024-05-01T23:00:00Z"), at("2024-05-03T01:00:00Z")),
            vec![(day("2024-05-01"), hour), (day("2024-05-02"), 24 * hour), (day("2024-05-03"), hour)]
        );
        assert_eq!(
            split_by_day(at("2024-05-01T23:00:00Z"), at("2024-05-02T00:00:00Z")),
            vec![(day("2024-05-01"), hour)]
        );
        assert_eq!(split_by_day(at("2024-05-01T10:00:00Z"), at("2024-05-01T09:00:00Z")), vec![(day("2024-05-01"), 0)]);
    }
}
