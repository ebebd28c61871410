//! How many messages one batch carries: whatever has already arrived, and, for a
//! batch that no write waits for, whatever arrives within a short linger.
//!
//! A write is answered once the read models it shows have applied it
//! ([`read_models_of`]); a batch holding such a message is applied at once. The
//! other batches (the audit trail, analytics, notifications and webhooks following
//! room events, which no room write waits for) gather for up to
//! `ProjectorConfig::linger` first: under load each of them otherwise commits a
//! transaction of a few messages every few milliseconds, and those transactions
//! compete for the cores, the pool and the WAL flushes with the ones writers wait
//! for. Their read models are later by the linger at most.

use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};

use super::Projection;

/// The read models a write of `aggregate_type` is answered after (read-your-writes):
/// the gateway waits for these, and only these, before it answers the write.
pub fn read_models_of(aggregate_type: &str) -> &'static [Projection] {
    match aggregate_type {
        "account" => &[Projection::Accounts],
        "session" => &[Projection::Sessions],
        "contacts" => &[Projection::Contacts],
        "room" => &[Projection::Rooms],
        "invitation" => &[Projection::Invitations],
        "settings" => &[Projection::Settings],
        "inbox" => &[Projection::Notifications],
        "webhook" => &[Projection::Webhooks],
        "push" => &[Projection::PushSubscriptions],
        _ => &[],
    }
}

/// Whether some write waits for `projection` to apply a message on `subject`
/// (`<namespace>.events.<aggregate type>.<id>`). A subject of another shape is
/// treated as waited for, so that nothing unknown is held back.
pub(crate) fn waited_for(projection: Projection, subject: &str) -> bool {
    let aggregate_type = subject.split('.').nth(2);
    aggregate_type.is_none_or(|aggregate_type| read_models_of(aggregate_type).contains(&projection))
}

/// What `gather` ended with: the batch, and the error the stream gave, if any,
/// after the messages before it.
pub(crate) struct Gathered<M, E> {
    pub batch: Vec<M>,
    pub failed: Option<E>,
}

/// Builds a batch from `first`: takes every message that has already arrived, up
/// to `max` in all; then, unless some message so far is `waited` for or `linger`
/// is zero, goes on receiving until `linger` has passed since it started, `max`
/// messages are held, or a waited-for message arrives. The stream's end is left
/// for the next receive to find.
pub(crate) async fn gather<M, E, S>(
    messages: &mut S,
    first: M,
    max: usize,
    linger: Duration,
    waited: impl Fn(&M) -> bool,
) -> Gathered<M, E>
where
    S: Stream<Item = Result<M, E>> + Unpin,
{
    let mut urgent = waited(&first);
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        let next = if urgent || linger.is_zero() {
            match messages.next().now_or_never() {
                Some(next) => next,
                None => break,
            }
        } else {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(next) => next,
                Err(_lingered) => break,
            }
        };
        match next {
            Some(Ok(message)) => {
                urgent = urgent || waited(&message);
                batch.push(message);
            }
            Some(Err(error)) => return Gathered { batch, failed: Some(error) },
            None => break,
        }
    }
    Gathered { batch, failed: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures::channel::mpsc;
    use std::time::Instant;

    const ROOM: &str = "rapat.events.room.8d1c";
    const INBOX: &str = "rapat.events.inbox.8d1c";

    #[test]
    fn only_the_read_models_a_write_shows_are_waited_for() {
        assert!(waited_for(Projection::Rooms, ROOM));
        assert!(!waited_for(Projection::Audit, ROOM));
        assert!(!waited_for(Projection::Analytics, ROOM));
        assert!(!waited_for(Projection::Notifications, ROOM));
        assert!(!waited_for(Projection::Webhooks, ROOM));
        assert!(waited_for(Projection::Notifications, INBOX));
        assert!(waited_for(Projection::Webhooks, "rapat.events.webhook.1"));
        assert!(waited_for(Projection::Audit, "not-an-event-subject"));
    }

    /// `(n, waited for)` messages, or an error.
    type Item = Result<(u32, bool), ()>;

    /// Sends `item` after `after` (real time: the margins below are wide).
    fn later(sender: &mpsc::UnboundedSender<Item>, after: Duration, item: Item) {
        let sender = sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = sender.unbounded_send(item);
        });
    }

    fn numbers(gathered: &Gathered<(u32, bool), ()>) -> Vec<u32> {
        gathered.batch.iter().map(|(n, _)| *n).collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn a_batch_no_write_waits_for_lingers_until_its_time_is_up() {
        let (sender, mut stream) = mpsc::unbounded::<Item>();
        sender.unbounded_send(Ok((2, false))).expect("open");
        later(&sender, ms(20), Ok((3, false)));
        later(&sender, ms(3_000), Ok((4, false)));
        let started = Instant::now();
        let gathered = gather(&mut stream, (1, false), 100, ms(400), |(_, w)| *w).await;
        assert_eq!(numbers(&gathered), [1, 2, 3]);
        assert!(started.elapsed() >= ms(400), "{:?}", started.elapsed());
        // The late one is the next batch's.
        assert_eq!(stream.next().await, Some(Ok((4, false))));
    }

    #[tokio::test]
    async fn a_lingering_batch_stops_at_its_largest() {
        let (sender, mut stream) = mpsc::unbounded::<Item>();
        for n in 2..=10 {
            later(&sender, ms(u64::from(n)), Ok((n, false)));
        }
        let started = Instant::now();
        let gathered = gather(&mut stream, (1, false), 4, ms(10_000), |(_, w)| *w).await;
        assert_eq!(numbers(&gathered), [1, 2, 3, 4]);
        assert!(started.elapsed() < ms(5_000), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_message_a_write_waits_for_ends_the_linger() {
        let (sender, mut stream) = mpsc::unbounded::<Item>();
        later(&sender, ms(10), Ok((2, false)));
        later(&sender, ms(20), Ok((3, true)));
        later(&sender, ms(8_000), Ok((4, false)));
        let started = Instant::now();
        let gathered = gather(&mut stream, (1, false), 100, ms(10_000), |(_, w)| *w).await;
        assert_eq!(numbers(&gathered), [1, 2, 3]);
        assert!(started.elapsed() < ms(5_000), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_waited_for_batch_takes_only_what_has_arrived() {
        let (sender, mut stream) = mpsc::unbounded::<Item>();
        sender.unbounded_send(Ok((2, false))).expect("open");
        later(&sender, ms(50), Ok((3, false)));
        let gathered = gather(&mut stream, (1, true), 100, ms(10_000), |(_, w)| *w).await;
        assert_eq!(numbers(&gathered), [1, 2]);
        // Without a linger nothing is waited for either.
        let unlingered = gather(&mut stream, (9, false), 100, Duration::ZERO, |(_, w)| *w).await;
        assert_eq!(numbers(&unlingered), [9]);
        assert_eq!(stream.next().await, Some(Ok((3, false))));
    }

    #[tokio::test]
    async fn an_error_ends_the_batch_after_the_messages_before_it() {
        let (sender, mut stream) = mpsc::unbounded::<Item>();
        sender.unbounded_send(Ok((2, false))).expect("open");
        sender.unbounded_send(Err(())).expect("open");
        let gathered = gather(&mut stream, (1, false), 100, ms(10_000), |(_, w)| *w).await;
        assert_eq!(numbers(&gathered), [1, 2]);
        assert_eq!(gathered.failed, Some(()));
    }
}
