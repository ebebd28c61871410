//! Is the stream still the one the checkpoint was written against?
//!
//! A checkpoint says "everything up to sequence N is applied". That is only true of
//! the stream that held those N messages. If NATS loses the stream's tail (an
//! unsynced power loss) or the stream is deleted and created again, new messages
//! get sequences at or below N and the projector would skip them as applied,
//! forever. So each checkpoint records what identifies its position (the stream's
//! creation time, and the `Nats-Msg-Id` and store time of the message at N), and
//! the runner compares that with the stream before trusting it: on every start,
//! every `stream_check` while running, after every NATS reconnect, and whenever a
//! message at or below the position it knows comes in.

use std::fmt;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, Message, stream::LastRawMessageErrorKind};

use super::checkpoint::Checkpoint;
use super::{ProjectorConfig, ProjectorError};

/// What identifies one stored message beyond its sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageMark {
    pub sequence: u64,
    /// The `Nats-Msg-Id` header: the command id, for messages the write side stored.
    pub message_id: Option<String>,
    /// When the stream stored it, in nanoseconds since the epoch.
    pub published_ns: i64,
}

impl MessageMark {
    /// The mark of a message delivered by a consumer.
    pub(crate) fn of(message: &Message) -> Result<Self, String> {
        let info = message.info().map_err(|error| format!("message without JetStream metadata: {error}"))?;
        Ok(Self {
            sequence: info.stream_sequence,
            message_id: message_id(message.headers.as_ref()),
            published_ns: nanos(info.published),
        })
    }
}

impl fmt::Display for MessageMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.message_id.as_deref().unwrap_or("none");
        write!(f, "sequence {} (msg id {id}, stored at {} ns)", self.sequence, self.published_ns)
    }
}

/// The parts of the stream's state a checkpoint is compared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StreamState {
    pub(crate) created_ns: i64,
    pub(crate) first_sequence: u64,
    pub(crate) last_sequence: u64,
}

/// What a check found.
pub(crate) struct Verified {
    /// Recorded with every checkpoint the runner writes from now on.
    pub(crate) created_ns: i64,
    /// `Some(why)` when the read model has applied messages the stream no longer
    /// holds (or a stream that is no longer there).
    pub(crate) mismatch: Option<String>,
}

/// Compares `checkpoint` with the stream as it is now: stream info, and the
/// message now stored at the checkpoint's sequence when the stream reaches it.
pub(crate) async fn verify(
    jetstream: &jetstream::Context,
    config: &ProjectorConfig,
    checkpoint: &Checkpoint,
) -> Result<Verified, ProjectorError> {
    let stream_name = config.namespace.events_stream();
    let nats = |what: &str, error: &dyn fmt::Display| ProjectorError::Nats(format!("{what} {stream_name}: {error}"));
    let mut stream = jetstream.get_stream(&stream_name).await.map_err(|error| nats("stream", &error))?;
    let info = stream.info().await.map_err(|error| nats("stream info of", &error))?;
    let state = StreamState {
        created_ns: nanos(info.created),
        first_sequence: info.state.first_sequence,
        last_sequence: info.state.last_sequence,
    };
    let at = checkpoint.last_sequence;
    let stored = if at > 0 && at <= state.last_sequence && at >= state.first_sequence {
        match stream.get_raw_message(at).await {
            Ok(message) => Some(MessageMark {
                sequence: message.sequence,
                message_id: message_id(Some(&message.headers)),
                published_ns: nanos(message.time),
            }),
            // Aged out (the stream's max age): nothing to compare with.
            Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => None,
            Err(error) => return Err(nats("reading the message at the checkpoint in", &error)),
        }
    } else {
        None
    };
    Ok(Verified { created_ns: state.created_ns, mismatch: compare(checkpoint, &state, stored.as_ref()) })
}

/// Why `checkpoint` does not belong to the stream described by `stream` (with
/// `stored`, the message now at the checkpoint's sequence, if any); `None` if it
/// does, or if nothing recorded says otherwise.
pub(crate) fn compare(checkpoint: &Checkpoint, stream: &StreamState, stored: Option<&MessageMark>) -> Option<String> {
    let at = checkpoint.last_sequence;
    if let Some(created) = checkpoint.stream_created_ns
        && created != stream.created_ns
    {
        return Some(format!(
            "the stream was created again: created at {} ns, the checkpoint (at sequence {at}) was written \
             against the stream created at {created} ns",
            stream.created_ns
        ));
    }
    if at > stream.last_sequence {
        return Some(format!(
            "the checkpoint is at sequence {at} but the stream ends at {}: the stream lost its tail",
            stream.last_sequence
        ));
    }
    let (Some(recorded), Some(stored)) = (checkpoint.last_message.as_ref(), stored) else { return None };
    let same_id = match (&recorded.message_id, &stored.message_id) {
        (Some(recorded), Some(stored)) => recorded == stored,
        (None, None) => true,
        _ => false,
    };
    if same_id && recorded.published_ns == stored.published_ns {
        return None;
    }
    Some(format!("the checkpoint applied {recorded}, but the stream now holds {stored} there"))
}

fn message_id(headers: Option<&HeaderMap>) -> Option<String> {
    headers.and_then(|headers| headers.get("Nats-Msg-Id")).map(|value| value.as_str().to_owned())
}

/// Nanoseconds since the epoch; JetStream times fit in an i64 until 2262.
fn nanos(time: async_nats::datetime::DateTime) -> i64 {
    i64::try_from(time.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::projector::Projection;

    fn mark(sequence: u64, id: &str, published_ns: i64) -> MessageMark {
        MessageMark { sequence, message_id: Some(id.to_owned()), published_ns }
    }

    fn checkpoint(last_sequence: u64, created: Option<i64>, last: Option<MessageMark>) -> Checkpoint {
        Checkpoint {
            projection: Projection::Rooms,
            last_sequence,
            applied_events: 0,
            updated_at: Utc::now(),
            stream_created_ns: created,
            last_message: last,
            stream_mismatch: None,
        }
    }

    #[test]
    fn the_same_stream_and_message_match() {
        let stream = StreamState { created_ns: 7, first_sequence: 1, last_sequence: 300 };
        let at = checkpoint(270, Some(7), Some(mark(270, "a", 5)));
        assert_eq!(compare(&at, &stream, Some(&mark(270, "a", 5))), None);
        // Nothing recorded yet (a checkpoint from before the record, or at 0).
        assert_eq!(compare(&checkpoint(270, None, None), &stream, Some(&mark(270, "b", 6))), None);
        assert_eq!(compare(&checkpoint(0, None, None), &StreamState { last_sequence: 0, ..stream }, None), None);
        // The message aged out: nothing to compare with.
        assert_eq!(compare(&at, &stream, None), None);
    }

    #[test]
    fn a_lost_tail_a_new_stream_or_another_message_is_a_mismatch() {
        let stream = StreamState { created_ns: 7, first_sequence: 1, last_sequence: 240 };
        let at = checkpoint(270, Some(7), Some(mark(270, "a", 5)));
        assert!(compare(&at, &stream, None).expect("mismatch").contains("ends at 240"));
        let recreated = StreamState { created_ns: 8, last_sequence: 300, ..stream };
        assert!(compare(&at, &recreated, Some(&mark(270, "a", 5))).expect("mismatch").contains("created again"));
        let refilled = StreamState { last_sequence: 300, ..stream };
        assert!(compare(&at, &refilled, Some(&mark(270, "b", 9))).is_some(), "another command at 270");
        assert!(compare(&at, &refilled, Some(&mark(270, "a", 9))).is_some(), "stored at another time");
        let anonymous = MessageMark { message_id: None, ..mark(270, "", 5) };
        assert!(compare(&at, &refilled, Some(&anonymous)).is_some(), "a message without an id");
        // A legacy checkpoint (no stream recorded) still sees a lost tail.
        assert!(compare(&checkpoint(270, None, None), &stream, None).is_some());
    }
}
