//! Writes what a batch's fold left in one round trip to Postgres where it can.
//!
//! Each kind of change is one set-based statement (one array per column, through
//! `UNNEST`): rooms created, rooms changed, stays changed, stays opened. They go
//! to the database as one statement, all but the last as data-modifying `WITH`
//! parts, because every round trip on the batch's path is one more wait on a busy
//! machine (README, "REST"). One case needs two: Postgres checks the open-stay
//! unique index row by row, in no promised order between the parts of a statement,
//! so a batch that closes a stay and opens another of the same room and user opens
//! it in a statement of its own, after the close.

use std::sync::LazyLock;

use sqlx::PgConnection;
use sqlx::postgres::PgArguments;

use super::super::ApplyError;
use super::ROOM_COLUMNS;
use super::fold::{Folded, RoomRow, Stay};

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, PgArguments>;

/// The array types of a `rooms` row's columns, in `ROOM_COLUMNS` order.
const ROOM_TYPES: [&str; 17] = [
    "uuid",
    "uuid",
    "text",
    "text",
    "bool",
    "int4",
    "timestamptz",
    "text",
    "int4",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "int4",
    "int8",
    "timestamptz",
    "timestamptz",
    "bool",
];
/// What a stay's row holds besides its keys (`bind_stay_state`).
const STAY_STATE_COLUMNS: &str = "left_at, left_reason, audio_muted, video_on, screen_sharing, muted_by_host";
const STAY_STATE_TYPES: [&str; 6] = ["timestamptz", "text", "bool", "bool", "bool", "bool"];

/// Where each part's parameters start in a statement of them all, in this order.
const ROOMS_CREATED: usize = 1;
const ROOMS_CHANGED: usize = ROOMS_CREATED + ROOM_TYPES.len();
const STAYS_CHANGED: usize = ROOMS_CHANGED + ROOM_TYPES.len();
const STAYS_OPENED: usize = STAYS_CHANGED + 1 + STAY_STATE_TYPES.len();

/// Every change of a batch whose openings cannot meet its closes.
static EVERYTHING: LazyLock<String> = LazyLock::new(|| {
    one_statement(&[
        insert_rooms(ROOMS_CREATED),
        update_rooms(ROOMS_CHANGED),
        update_stays(STAYS_CHANGED),
        insert_stays(STAYS_OPENED),
    ])
});
/// Every change but the openings, which follow as `OPENINGS`.
static ALL_BUT_OPENINGS: LazyLock<String> = LazyLock::new(|| {
    one_statement(&[insert_rooms(ROOMS_CREATED), update_rooms(ROOMS_CHANGED), update_stays(STAYS_CHANGED)])
});
static OPENINGS: LazyLock<String> = LazyLock::new(|| insert_stays(1));

/// Writes what the fold left: rooms created, rooms changed, stays changed, stays
/// opened.
pub(super) async fn write(tx: &mut PgConnection, folded: &Folded) -> Result<(), ApplyError> {
    let changed: Vec<&Stay> = folded.changed.iter().collect();
    let opened: Vec<&Stay> = folded.opened.iter().flatten().collect();
    if folded.created.is_empty() && folded.updated.is_empty() && changed.is_empty() && folded.opened.is_empty() {
        return Ok(());
    }
    let ids = opened_ids(tx, &folded.opened).await?;
    let reopens = opened
        .iter()
        .any(|open| changed.iter().any(|stay| (stay.room_id, stay.user_id) == (open.room_id, open.user_id)));
    let statement = if reopens { ALL_BUT_OPENINGS.as_str() } else { EVERYTHING.as_str() };
    let query = bind_rooms(sqlx::query(sqlx::AssertSqlSafe(statement)), &folded.created);
    let query = bind_changed_stays(bind_rooms(query, &folded.updated), &changed);
    if !reopens {
        bind_opened_stays(query, &ids, &opened).execute(&mut *tx).await?;
        return Ok(());
    }
    query.execute(&mut *tx).await?;
    if !opened.is_empty() {
        bind_opened_stays(sqlx::query(sqlx::AssertSqlSafe(OPENINGS.as_str())), &ids, &opened).execute(&mut *tx).await?;
    }
    Ok(())
}

/// The ids of the stays opened, when they must be drawn before the insert: a join
/// that found its stay open drew an id and inserted nothing, so the ids are drawn
/// here, all of them, and the holes left where those joins were. `None` when every
/// join opened a stay: the insert draws them, in join order.
async fn opened_ids(tx: &mut PgConnection, opened: &[Option<Stay>]) -> Result<Option<Vec<i64>>, ApplyError> {
    if opened.iter().all(Option::is_some) {
        return Ok(None);
    }
    let drawn: Vec<i64> = sqlx::query_scalar(
        "SELECT nextval(pg_get_serial_sequence('participants', 'id')) FROM generate_series(1, $1) ORDER BY 1",
    )
    .bind(i32::try_from(opened.len()).unwrap_or(i32::MAX))
    .fetch_all(&mut *tx)
    .await?;
    Ok(Some(opened.iter().zip(drawn).filter(|(stay, _)| stay.is_some()).map(|(_, id)| id).collect()))
}

/// `parts` as one statement: all but the last as data-modifying `WITH` parts,
/// which run to completion whether or not the last reads them.
fn one_statement(parts: &[String]) -> String {
    let Some((last, before)) = parts.split_last() else { return String::new() };
    let with: Vec<String> = before.iter().enumerate().map(|(n, part)| format!("part{n} AS ({part})")).collect();
    if with.is_empty() { last.clone() } else { format!("WITH {} {last}", with.join(", ")) }
}

/// `UNNEST($first::type[], ...)` over `types`.
fn unnest(first: usize, types: &[&str]) -> String {
    let arrays: Vec<String> = types.iter().enumerate().map(|(n, kind)| format!("${}::{kind}[]", first + n)).collect();
    format!("UNNEST({})", arrays.join(", "))
}

/// No `ON CONFLICT`: a room created twice is refused, and the message parked.
fn insert_rooms(first: usize) -> String {
    format!("INSERT INTO rooms ({ROOM_COLUMNS}) SELECT * FROM {}", unnest(first, &ROOM_TYPES))
}

fn update_rooms(first: usize) -> String {
    let columns = ROOM_COLUMNS.split(", ").filter(|column| *column != "id");
    let set: Vec<String> = columns.map(|column| format!("{column} = u.{column}")).collect();
    format!(
        "UPDATE rooms AS r SET {} FROM {} AS u({ROOM_COLUMNS}) WHERE r.id = u.id",
        set.join(", "),
        unnest(first, &ROOM_TYPES)
    )
}

fn update_stays(first: usize) -> String {
    let set: Vec<String> = STAY_STATE_COLUMNS.split(", ").map(|column| format!("{column} = u.{column}")).collect();
    let types: Vec<&str> = std::iter::once("int8").chain(STAY_STATE_TYPES).collect();
    format!(
        "UPDATE participants AS p SET {} FROM {} AS u(id, {STAY_STATE_COLUMNS}) WHERE p.id = u.id",
        set.join(", "),
        unnest(first, &types)
    )
}

/// `WITH ORDINALITY ... ORDER BY`: the default draws the ids in the array's order.
fn insert_stays(first: usize) -> String {
    let types: Vec<&str> = ["int8", "uuid", "uuid", "timestamptz"].into_iter().chain(STAY_STATE_TYPES).collect();
    format!(
        "INSERT INTO participants (id, room_id, user_id, joined_at, {STAY_STATE_COLUMNS}) \
         SELECT COALESCE(u.id, nextval(pg_get_serial_sequence('participants', 'id'))), u.room_id, u.user_id, \
         u.joined_at, {} FROM {} WITH ORDINALITY AS u(id, room_id, user_id, joined_at, {STAY_STATE_COLUMNS}, n) \
         ORDER BY u.n",
        STAY_STATE_COLUMNS.split(", ").map(|column| format!("u.{column}")).collect::<Vec<_>>().join(", "),
        unnest(first, &types)
    )
}

fn bind_rooms<'q>(query: Query<'q>, rows: &'q [RoomRow]) -> Query<'q> {
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

fn bind_changed_stays<'q>(query: Query<'q>, stays: &[&'q Stay]) -> Query<'q> {
    bind_stay_state(query.bind(stays.iter().map(|s| s.id).collect::<Vec<_>>()), stays)
}

fn bind_opened_stays<'q>(query: Query<'q>, ids: &Option<Vec<i64>>, stays: &[&'q Stay]) -> Query<'q> {
    let query = query
        .bind(match ids {
            Some(ids) => ids.iter().map(|id| Some(*id)).collect::<Vec<_>>(),
            None => vec![None::<i64>; stays.len()],
        })
        .bind(stays.iter().map(|s| s.room_id).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.user_id).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.joined_at).collect::<Vec<_>>());
    bind_stay_state(query, stays)
}

/// Binds what a stay's row holds besides its keys, in `STAY_STATE_COLUMNS` order.
fn bind_stay_state<'q>(query: Query<'q>, stays: &[&'q Stay]) -> Query<'q> {
    query
        .bind(stays.iter().map(|s| s.left_at).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.left_reason.as_deref()).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.audio_muted).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.video_on).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.screen_sharing).collect::<Vec<_>>())
        .bind(stays.iter().map(|s| s.muted_by_host).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_number_their_parameters_one_after_another() {
        let everything = EVERYTHING.as_str();
        assert!(everything.starts_with("WITH part0 AS (INSERT INTO rooms"), "{everything}");
        assert!(everything.contains("UNNEST($1::uuid[]"), "{everything}");
        assert!(everything.contains("UNNEST($18::uuid[]"), "{everything}");
        assert!(everything.contains("UNNEST($35::int8[]"), "{everything}");
        assert!(
            everything.contains("UNNEST($42::int8[], $43::uuid[], $44::uuid[], $45::timestamptz[]"),
            "{everything}"
        );
        assert!(everything.contains("$51::bool[])") && !everything.contains("$52"), "{everything}");
        let before_openings = ALL_BUT_OPENINGS.as_str();
        assert!(before_openings.contains("$41::bool[]") && !before_openings.contains("$42"), "{before_openings}");
        assert!(
            before_openings.contains("UPDATE participants") && !before_openings.contains("INSERT INTO participants")
        );
        assert!(OPENINGS.starts_with("INSERT INTO participants") && OPENINGS.contains("$10::bool[]"));
    }
}
