//! `rooms` and `participants`, from room events (and through `recordings.rs`
//! the room's recording flag and `track_recordings`). A participant row is one stay:
//! joining opens it, leaving, removal or the room's end closes it.
//!
//! A batch of events is folded in memory (`fold.rs`, no SQL) from the rows it
//! starts from, loaded with one query per table, and what it leaves is written
//! with one set-based statement per kind of change. The live projector applies one
//! event at a time through the same path (a batch of one), so a rebuild and the
//! live read model cannot disagree on what an event does.

mod fold;
#[cfg(test)]
mod tests;

use rapat_domain::envelope::StoredEvent;
use rapat_domain::room::RoomEvent;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{ApplyError, aggregate_uuid, check_found, decode, recordings};
use fold::{Event, Folded, Loaded, RoomRow, Stay, fold, rooms_to_load, stays_to_load};

pub(super) async fn apply(tx: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
    apply_many(tx, &[event]).await
}

/// Applies `events` (in stream order) as their statements one by one would, with a
/// handful of statements in all.
pub(super) async fn apply_many(tx: &mut PgConnection, events: &[&StoredEvent]) -> Result<(), ApplyError> {
    let mut decoded = Vec::with_capacity(events.len());
    let mut sources = Vec::with_capacity(events.len());
    for event in events {
        let Some(room_event) = decode::<RoomEvent>(event)? else { continue };
        decoded.push(Event { room: aggregate_uuid(event)?, at: event.timestamp, event: room_event });
        sources.push(*event);
    }
    if decoded.is_empty() {
        return Ok(());
    }
    let loaded = load(tx, &decoded).await?;
    let folded = fold(loaded, &decoded)?;
    for &index in &folded.recordings {
        let Event { room, at, event } = &decoded[index];
        match event {
            RoomEvent::TrackRecordingFinished { recording } => recordings::finished(tx, *room, recording, *at).await?,
            RoomEvent::TrackRecordingExpired { track_recording_id } => {
                let rows = recordings::expired(tx, *room, *track_recording_id, *at).await?;
                check_found(rows.rows_affected(), sources[index]);
            }
            _ => {}
        }
    }
    write(tx, &folded).await?;
    for &index in &folded.unmatched {
        check_found(0, sources[index]);
    }
    Ok(())
}

const ROOM_COLUMNS: &str = "id, host_id, name, description, has_password, max_users, scheduled_at, status, \
     participant_count, created_at, updated_at, ended_at, duration_minutes, schedule_sequence, started_at, \
     cancelled_at, recording";

const STAY_COLUMNS: &str =
    "id, room_id, user_id, joined_at, left_at, left_reason, audio_muted, video_on, screen_sharing, muted_by_host";

/// The rows the batch starts from: one query for the rooms, one for the open stays.
async fn load(tx: &mut PgConnection, events: &[Event]) -> Result<Loaded, ApplyError> {
    let mut loaded = Loaded::default();
    let rooms = rooms_to_load(events);
    if !rooms.is_empty() {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = ANY($1)")))
            .bind(&rooms)
            .fetch_all(&mut *tx)
            .await?;
        loaded.rooms = rows.iter().map(room_row).collect::<Result<_, _>>()?;
    }
    let stays = stays_to_load(events);
    if !stays.is_empty() {
        // Both halves use the open-stay index (room_id, user_id) WHERE left_at IS NULL.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {STAY_COLUMNS} FROM participants WHERE left_at IS NULL AND room_id = ANY($1) \
             UNION SELECT {STAY_COLUMNS} FROM participants \
             WHERE left_at IS NULL AND (room_id, user_id) IN (SELECT * FROM UNNEST($2::uuid[], $3::uuid[]))"
        )))
        .bind(&stays.rooms)
        .bind(&stays.rooms_of_pairs)
        .bind(&stays.users_of_pairs)
        .fetch_all(&mut *tx)
        .await?;
        loaded.open_stays = rows.iter().map(stay_row).collect::<Result<_, _>>()?;
    }
    Ok(loaded)
}

fn room_row(row: &PgRow) -> Result<RoomRow, sqlx::Error> {
    Ok(RoomRow {
        id: row.try_get("id")?,
        host_id: row.try_get("host_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        has_password: row.try_get("has_password")?,
        max_users: row.try_get("max_users")?,
        scheduled_at: row.try_get("scheduled_at")?,
        status: row.try_get("status")?,
        participant_count: row.try_get("participant_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        ended_at: row.try_get("ended_at")?,
        duration_minutes: row.try_get("duration_minutes")?,
        schedule_sequence: row.try_get("schedule_sequence")?,
        started_at: row.try_get("started_at")?,
        cancelled_at: row.try_get("cancelled_at")?,
        recording: row.try_get("recording")?,
    })
}

fn stay_row(row: &PgRow) -> Result<Stay, sqlx::Error> {
    Ok(Stay {
        id: Some(row.try_get("id")?),
        room_id: row.try_get("room_id")?,
        user_id: row.try_get("user_id")?,
        joined_at: row.try_get("joined_at")?,
        left_at: row.try_get("left_at")?,
        left_reason: row.try_get("left_reason")?,
        audio_muted: row.try_get("audio_muted")?,
        video_on: row.try_get("video_on")?,
        screen_sharing: row.try_get("screen_sharing")?,
        muted_by_host: row.try_get("muted_by_host")?,
    })
}

/// Writes what the fold left: rooms created, rooms changed, stays changed, then
/// stays opened (after the changes: a stay closed and opened again in one batch
/// must be closed before the new one can be the open one).
async fn write(tx: &mut PgConnection, folded: &Folded) -> Result<(), ApplyError> {
    if !folded.created.is_empty() {
        // No ON CONFLICT: a room created twice is refused, and the message parked.
        let query = format!(
            "INSERT INTO rooms ({ROOM_COLUMNS}) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], \
             $5::bool[], $6::int4[], $7::timestamptz[], $8::text[], $9::int4[], $10::timestamptz[], \
             $11::timestamptz[], $12::timestamptz[], $13::int4[], $14::int8[], $15::timestamptz[], \
             $16::timestamptz[], $17::bool[])"
        );
        bind_rooms(sqlx::query(sqlx::AssertSqlSafe(query)), &folded.created).execute(&mut *tx).await?;
    }
    if !folded.updated.is_empty() {
        let query = format!(
            "UPDATE rooms AS r SET host_id = u.host_id, name = u.name, description = u.description, \
             has_password = u.has_password, max_users = u.max_users, scheduled_at = u.scheduled_at, \
             status = u.status, participant_count = u.participant_count, created_at = u.created_at, \
             updated_at = u.updated_at, ended_at = u.ended_at, duration_minutes = u.duration_minutes, \
             schedule_sequence = u.schedule_sequence, started_at = u.started_at, cancelled_at = u.cancelled_at, \
             recording = u.recording \
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bool[], $6::int4[], \
             $7::timestamptz[], $8::text[], $9::int4[], $10::timestamptz[], $11::timestamptz[], \
             $12::timestamptz[], $13::int4[], $14::int8[], $15::timestamptz[], $16::timestamptz[], $17::bool[]) \
             AS u({ROOM_COLUMNS}) WHERE r.id = u.id"
        );
        bind_rooms(sqlx::query(sqlx::AssertSqlSafe(query)), &folded.updated).execute(&mut *tx).await?;
    }
    if !folded.changed.is_empty() {
        let stays: Vec<&Stay> = folded.changed.iter().collect();
        let query = sqlx::query(
            "UPDATE participants AS p SET left_at = u.left_at, left_reason = u.left_reason, \
             audio_muted = u.audio_muted, video_on = u.video_on, screen_sharing = u.screen_sharing, \
             muted_by_host = u.muted_by_host \
             FROM UNNEST($1::int8[], $2::timestamptz[], $3::text[], $4::bool[], $5::bool[], $6::bool[], $7::bool[]) \
             AS u(id, left_at, left_reason, audio_muted, video_on, screen_sharing, muted_by_host) WHERE p.id = u.id",
        )
        .bind(stays.iter().map(|s| s.id).collect::<Vec<_>>());
        bind_stay_state(query, &stays).execute(&mut *tx).await?;
    }
    insert_stays(tx, &folded.opened).await
}

fn bind_rooms<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    rows: &'q [RoomRow],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.host_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.description.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.has_password).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.max_users).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.scheduled_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.participant_count).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.ended_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.duration_minutes).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.schedule_sequence).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.started_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.cancelled_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.recording).collect::<Vec<_>>())
}

/// Inserts the stays the batch opened, drawing their ids from the column's
/// sequence in join order, as the inserts one by one did.
async fn insert_stays(tx: &mut PgConnection, opened: &[Option<Stay>]) -> Result<(), ApplyError> {
    if opened.is_empty() {
        return Ok(());
    }
    let stays: Vec<&Stay> = opened.iter().flatten().collect();
    // A join that found its stay open drew an id and inserted nothing. Only then are
    // the ids drawn here, all of them, and the holes left where those joins were.
    let ids: Option<Vec<i64>> = if stays.len() < opened.len() {
        let drawn: Vec<i64> = sqlx::query_scalar(
            "SELECT nextval(pg_get_serial_sequence('participants', 'id')) FROM generate_series(1, $1) ORDER BY 1",
        )
        .bind(i32::try_from(opened.len()).unwrap_or(i32::MAX))
        .fetch_all(&mut *tx)
        .await?;
        Some(opened.iter().zip(drawn).filter(|(stay, _)| stay.is_some()).map(|(_, id)| id).collect())
    } else {
        None
    };
    // WITH ORDINALITY ... ORDER BY: the default draws the ids in the array's order.
    let query = sqlx::query(
        "INSERT INTO participants (id, room_id, user_id, joined_at, left_at, left_reason, audio_muted, video_on, \
         screen_sharing, muted_by_host) \
         SELECT COALESCE(u.id, nextval(pg_get_serial_sequence('participants', 'id'))), u.room_id, u.user_id, \
         u.joined_at, u.left_at, u.left_reason, u.audio_muted, u.video_on, u.screen_sharing, u.muted_by_host \
         FROM UNNEST($1::int8[], $2::uuid[], $3::uuid[], $4::timestamptz[], $5::timestamptz[], $6::text[], \
         $7::bool[], $8::bool[], $9::bool[], $10::bool[]) WITH ORDINALITY \
         AS u(id, room_id, user_id, joined_at, left_at, left_reason, audio_muted, video_on, screen_sharing, \
         muted_by_host, n) ORDER BY u.n",
    )
    .bind(match &ids {
        Some(ids) => ids.iter().map(|id| Some(*id)).collect::<Vec<_>>(),
        None => vec![None::<i64>; stays.len()],
    })
    .bind(stays.iter().map(|s| s.room_id).collect::<Vec<_>>())
    .bind(stays.iter().map(|s| s.user_id).collect::<Vec<_>>())
    .bind(stays.iter().map(|s| s.joined_at).collect::<Vec<_>>());
    bind_stay_state(query, &stays).execute(&mut *tx).await?;
    Ok(())
}

/// Binds what a stay's row holds besides its keys, in the order both stay
/// statements list it: left_at, left_reason, audio_muted, video_on,
/// screen_sharing, muted_by_host.
fn bind_stay_state<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    stays: &[&'q Stay],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(stays.iter().map(|s| s.left_at).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.left_reason.as_deref()).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.audio_muted).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.video_on).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.screen_sharing).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.muted_by_host).collect::<Vec<_>>())
}
