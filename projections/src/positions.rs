//! Read-your-writes: wait until the projections a write affects have applied it.
//!
//! Projectors announce every checkpoint on the `rapat_checkpoints` channel
//! (`<projection>:<seq>`, sent by the committing transaction). One listener task per
//! [`ProjectionPositions`] keeps the latest positions in a `watch` per projection
//! (a waiter wakes only when a projection it waits for moves), reloading them
//! all from `projection_checkpoints` when it (re)connects and every 100 ms, since a
//! notification sent while the listener was reconnecting is lost for good.
//!
//! A projector running in the same process as the follower also tells it of each
//! commit directly ([`announce_locally`]), so a write answered by this process is
//! released as soon as its batch commits rather than when the NOTIFY makes its way
//! back through Postgres; the NOTIFY still serves every other process.
//!
//! A position can go backwards: a projection whose stream lost its tail has a
//! checkpoint past messages that will be written again with the same sequences,
//! and its rebuild leaves the checkpoint lower. While a projection's checkpoint is
//! marked with a stream mismatch its position is unknown (`None`), so a wait for a
//! new event's sequence is not released by the stale, higher checkpoint; after the
//! rebuild the position is whatever the rebuilt checkpoint says. Without a
//! mismatch in between a checkpoint never moves back (a rebuild's switch leaves it
//! at or past the live one), so a lower number heard after a higher one is stale
//! news (a NOTIFY overtaken by a local announcement, a reload that read the row
//! just before a commit) and is ignored.

use std::sync::Mutex;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};

use crate::projector::{CHECKPOINT_CHANNEL, MISMATCH, Projection};
use crate::sql::to_u64;

/// The last known position of every projection; `None` until first loaded, and
/// while the projection's checkpoint has a stream mismatch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Positions([Option<u64>; Projection::ALL.len()]);

impl Positions {
    pub fn get(&self, projection: Projection) -> Option<u64> {
        self.0[projection.index()]
    }

    fn reached(&self, projections: &[Projection], stream_sequence: u64) -> bool {
        projections.iter().all(|projection| self.get(*projection).is_some_and(|at| at >= stream_sequence))
    }
}

/// The projections had not reached the position in time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("projections have not reached stream sequence {stream_sequence} after {waited:?} (positions: {positions:?})")]
pub struct WaitTimeout {
    pub stream_sequence: u64,
    pub waited: Duration,
    pub positions: Positions,
}

/// Live positions of every projection. Cheap to clone; the listener task stops
/// once every clone is dropped.
#[derive(Clone)]
pub struct ProjectionPositions {
    /// One channel per projection (at `Projection::index`): with one channel for
    /// all, each of the twelve projections' checkpoints woke every waiting write.
    positions: Vec<watch::Receiver<Option<u64>>>,
}

const POLL_EVERY: Duration = Duration::from_millis(100);

/// The followers of this process, each with the database it follows
/// ([`database_key`]), for [`announce_locally`]. Closed ones are dropped as found.
static LOCAL_FOLLOWERS: Mutex<Vec<(String, mpsc::Sender<Heard>)>> = Mutex::new(Vec::new());

/// Which database a pool is on, as far as telling followers apart needs.
pub(crate) fn database_key(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or_default())
}

/// Tells the followers in this process of the database `database` (a
/// [`database_key`]) that `projection` has committed its checkpoint at
/// `sequence`. Never waits: a follower too busy to take it now hears the NOTIFY.
pub(crate) fn announce_locally(database: &str, projection: Projection, sequence: u64) {
    let mut followers = LOCAL_FOLLOWERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    followers.retain(|(_, follower)| !follower.is_closed());
    for (key, follower) in followers.iter() {
        if key == database {
            let _ = follower.try_send(Heard::Committed(projection, sequence));
        }
    }
}

impl ProjectionPositions {
    /// Starts following the checkpoints of the database behind `pool`. Must be
    /// called inside a tokio runtime.
    pub fn start(pool: PgPool) -> Self {
        let (senders, positions) = Projection::ALL.iter().map(|_| watch::channel(None)).unzip();
        let (notifications, incoming) = mpsc::channel(1024);
        LOCAL_FOLLOWERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((database_key(&pool), notifications.clone()));
        let listener = tokio::spawn(listen(pool.clone(), notifications));
        tokio::spawn(async move {
            follow(pool, senders, incoming).await;
            listener.abort();
        });
        Self { positions }
    }

    /// The positions as last seen.
    pub fn current(&self) -> Positions {
        let mut now = Positions::default();
        for (at, receiver) in now.0.iter_mut().zip(&self.positions) {
            *at = *receiver.borrow();
        }
        now
    }

    /// Returns once every projection in `projections` has applied the stream up to
    /// `stream_sequence`, or fails after `timeout`. Costs nothing when they already
    /// have. The sequence must be that of a message the projection reads (in its
    /// subject filter): a projection's position only moves on its own messages.
    pub async fn wait_for(
        &self,
        projections: &[Projection],
        stream_sequence: u64,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        if self.current().reached(projections, stream_sequence) {
            return Ok(());
        }
        let all_reached = async {
            loop {
                for projection in projections {
                    let mut receiver = self.positions[projection.index()].clone();
                    receiver.wait_for(|at| at.is_some_and(|at| at >= stream_sequence)).await?;
                }
                // Each one reached it in turn; one of them may have moved back since
                // (a stream mismatch), and then the wait goes on.
                if self.current().reached(projections, stream_sequence) {
                    return Ok::<(), watch::error::RecvError>(());
                }
            }
        };
        let waited = tokio::time::timeout(timeout, all_reached).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            // Timed out, or the follower task is gone (which only happens on drop).
            Ok(Err(_)) | Err(_) => Err(WaitTimeout { stream_sequence, waited: timeout, positions: self.current() }),
        }
    }
}

enum Heard {
    Notification(String),
    /// A projector of this process committed its checkpoint at this position.
    Committed(Projection, u64),
    /// The listener's connection was lost and re-established: reload everything.
    Reconnected,
}

/// Forwards notifications to `follow`. Kept in its own task so that nothing ever
/// cancels a receive half-way.
async fn listen(pool: PgPool, heard: mpsc::Sender<Heard>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::debug!(%error, "checkpoint listener cannot connect; polling meanwhile");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(error) = listener.listen(CHECKPOINT_CHANNEL).await {
            tracing::debug!(%error, "LISTEN failed; polling meanwhile");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        if heard.send(Heard::Reconnected).await.is_err() {
            return;
        }
        loop {
            let next = match listener.try_recv().await {
                Ok(Some(notification)) => Heard::Notification(notification.payload().to_owned()),
                Ok(None) => Heard::Reconnected,
                Err(error) => {
                    tracing::debug!(%error, "checkpoint listener failed; reconnecting");
                    break;
                }
            };
            if heard.send(next).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies notifications and periodic reloads to the watch, in one task, so a
/// reload and a notification never race each other.
async fn follow(pool: PgPool, senders: Vec<watch::Sender<Option<u64>>>, mut heard: mpsc::Receiver<Heard>) {
    let mut poll = tokio::time::interval(POLL_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Every clone of `ProjectionPositions` holds every receiver.
        if senders.iter().all(watch::Sender::is_closed) {
            return;
        }
        tokio::select! {
            next = heard.recv() => match next {
                Some(Heard::Notification(payload)) => match parse(&payload) {
                    Some((projection, sequence)) => {
                        // Stage timing for `gateway/benches/rest.rs` (off unless traced).
                        tracing::trace!(target: "rapat::latency", projection = projection.name(),
                            sequence = sequence.unwrap_or(0), "heard");
                        set(&senders[projection.index()], sequence);
                    }
                    None => tracing::debug!(payload, "unreadable checkpoint notification"),
                },
                Some(Heard::Committed(projection, sequence)) => {
                    tracing::trace!(target: "rapat::latency", projection = projection.name(), sequence, "heard");
                    set(&senders[projection.index()], Some(sequence));
                }
                Some(Heard::Reconnected) => reload(&pool, &senders).await,
                None => return,
            },
            _ = poll.tick() => reload(&pool, &senders).await,
        }
    }
}

/// Moves a position; a lower number after a higher one is stale and ignored
/// (see the module's comment), while `None` (a mismatch) always goes through.
fn set(sender: &watch::Sender<Option<u64>>, position: Option<u64>) {
    sender.send_if_modified(|at| {
        let stale = matches!((*at, position), (Some(known), Some(heard)) if heard < known);
        let changed = !stale && *at != position;
        if changed {
            *at = position;
        }
        changed
    });
}

async fn reload(pool: &PgPool, senders: &[watch::Sender<Option<u64>>]) {
    let select = "SELECT projection, last_sequence, stream_mismatch IS NOT NULL FROM projection_checkpoints";
    let rows: Vec<(String, i64, bool)> = match sqlx::query_as(select).fetch_all(pool).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::debug!(%error, "cannot load checkpoints");
            return;
        }
    };
    let mut loaded = Positions::default();
    let mut rows_seen = [false; Projection::ALL.len()];
    for (name, sequence, mismatch) in rows {
        if let Some(projection) = Projection::parse(&name) {
            rows_seen[projection.index()] = true;
            loaded.0[projection.index()] = (!mismatch).then_some(to_u64(sequence));
        }
    }
    // A projection without a row has applied nothing yet.
    for projection in Projection::ALL {
        if !rows_seen[projection.index()] {
            loaded.0[projection.index()] = Some(0);
        }
    }
    for (sender, position) in senders.iter().zip(loaded.0) {
        set(sender, position);
    }
}

/// `<projection>:<seq>`, or `<projection>:mismatch` (position unknown: `None`).
fn parse(payload: &str) -> Option<(Projection, Option<u64>)> {
    let (name, sequence) = payload.split_once(':')?;
    let projection = Projection::parse(name)?;
    if sequence == MISMATCH {
        return Some((projection, None));
    }
    Some((projection, Some(sequence.parse().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse() {
        assert_eq!(parse("rooms:42"), Some((Projection::Rooms, Some(42))));
        assert_eq!(parse("audit:0"), Some((Projection::Audit, Some(0))));
        assert_eq!(parse("rooms:mismatch"), Some((Projection::Rooms, None)));
        assert_eq!(parse("rooms"), None);
        assert_eq!(parse("nope:1"), None);
        assert_eq!(parse("rooms:-1"), None);
    }

    #[test]
    fn a_lower_position_after_a_higher_one_is_stale_unless_a_mismatch_came_between() {
        let (sender, receiver) = watch::channel(None);
        set(&sender, Some(5));
        set(&sender, Some(3));
        assert_eq!(*receiver.borrow(), Some(5), "an older announcement heard late");
        set(&sender, None);
        assert_eq!(*receiver.borrow(), None, "a mismatch always goes through");
        set(&sender, Some(3));
        assert_eq!(*receiver.borrow(), Some(3), "after a mismatch, the rebuilt position");
    }

    /// No database at all: only the projector's word in this process can move it.
    #[tokio::test]
    async fn a_commit_announced_in_this_process_releases_its_waiters_without_postgres() {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(50))
            .connect_lazy("postgres://nobody@127.0.0.1:1/announced_locally")
            .expect("a lazy pool");
        let positions = ProjectionPositions::start(pool.clone());
        let other = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/another_database")
            .expect("a lazy pool");
        announce_locally(&database_key(&other), Projection::Rooms, 7);
        let waited = positions.wait_for(&[Projection::Rooms], 7, Duration::from_millis(200)).await;
        assert!(waited.is_err(), "another database's commit released the wait");
        announce_locally(&database_key(&pool), Projection::Rooms, 7);
        positions
            .wait_for(&[Projection::Rooms], 7, Duration::from_secs(5))
            .await
            .expect("released by the announcement");
    }

    #[test]
    fn reached_needs_every_projection() {
        let mut positions = Positions::default();
        assert!(!positions.reached(&[Projection::Rooms], 0));
        positions.0[Projection::Rooms.index()] = Some(5);
        assert!(positions.reached(&[Projection::Rooms], 5));
        assert!(!positions.reached(&[Projection::Rooms, Projection::Audit], 5));
        assert!(positions.reached(&[], 100));
    }
}
