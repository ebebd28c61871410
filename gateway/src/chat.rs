//! Chat history on its own JetStream stream, apart from the event stream: chat is
//! not a domain fact any aggregate decides on, it expires, and it must not grow the
//! stream every read model replays.
//!
//! Stream `<NAMESPACE>_CHAT` (beside `<NAMESPACE>_EVENTS`), one subject per room,
//! `<namespace>.chat.<roomId>`, one message per chat message: a JSON
//! [`StoredChat`]. The stream sequence is the message's id. Limits: a maximum age
//! and a maximum number of messages per room (per subject), both from
//! `GatewayConfig`, so that reading a room's history is bounded by the per-room
//! limit whatever the stream holds in total. Only features of NATS 2.9 are used.
//!
//! The stream is made (with those limits) on first use; an existing stream keeps
//! its own limits, which are an operator's decision. After a failure the next call
//! makes sure of the stream again, so a chat stream deleted under a running
//! gateway comes back.

use std::collections::VecDeque;
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::{self, stream};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use rapat_wire::Namespace;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::GatewayConfig;

/// The largest stored chat message (2000 characters of up to 4 bytes, and the rest).
const MAX_STORED_BYTES: i32 = 16 * 1024;
/// How long a history read waits for the next message before giving up.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("chat storage is unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> ChatError {
    ChatError::Unavailable(format!("{what}: {error}"))
}

/// One chat message as stored (the body of one stream message).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredChat {
    pub room_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub message: String,
    pub timestamp: DateTime<Utc>,
}

/// One chat message as read back.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatEntry {
    /// The stream sequence: increasing in time within a room, never reused.
    pub id: u64,
    pub room_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub message: String,
    pub timestamp: DateTime<Utc>,
}

/// A page of history, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatPage {
    pub messages: Vec<ChatEntry>,
    /// Pass as `before` for the page of older messages; null when there are none.
    pub next_before: Option<u64>,
}

pub struct ChatStore {
    jetstream: jetstream::Context,
    /// Names the chat stream and each room's subject.
    namespace: Namespace,
    stream_name: String,
    /// The stream once made sure of; emptied after a failure.
    stream: Mutex<Option<stream::Stream>>,
}

impl ChatStore {
    pub fn new(nats: async_nats::Client, namespace: Namespace) -> Self {
        Self {
            jetstream: jetstream::new(nats),
            stream_name: namespace.chat_stream(),
            namespace,
            stream: Mutex::new(None),
        }
    }

    pub fn subject(&self, room: Uuid) -> String {
        self.namespace.chat_subject(room)
    }

    async fn stream(&self, config: &GatewayConfig) -> Result<stream::Stream, ChatError> {
        let mut ensured = self.stream.lock().await;
        if let Some(stream) = ensured.as_ref() {
            return Ok(stream.clone());
        }
        let stream_config = stream::Config {
            name: self.stream_name.clone(),
            description: Some("rapat chat: recent messages of each room (not domain events)".into()),
            subjects: vec![self.namespace.all_chat_subjects()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            num_replicas: config.chat_replicas.max(1),
            max_age: config.chat_max_age,
            max_messages_per_subject: config.chat_max_per_room.max(1),
            max_message_size: MAX_STORED_BYTES,
            // Lets any replica answer direct gets (NATS 2.9+).
            allow_direct: true,
            ..Default::default()
        };
        let stream = self
            .jetstream
            .get_or_create_stream(stream_config)
            .await
            .map_err(|error| unavailable(&format!("opening stream {}", self.stream_name), error))?;
        *ensured = Some(stream.clone());
        Ok(stream)
    }

    async fn forget_stream(&self) {
        *self.stream.lock().await = None;
    }

    /// Stores a chat message and returns its id once JetStream has acknowledged it.
    pub async fn append(&self, config: &GatewayConfig, chat: &StoredChat) -> Result<u64, ChatError> {
        self.stream(config).await?;
        let body = serde_json::to_vec(chat).map_err(|error| unavailable("encoding", error))?;
        let stored = async {
            let ack = self.jetstream.publish(self.subject(chat.room_id), body.into()).await?;
            Ok::<_, async_nats::Error>(ack.await?.sequence)
        }
        .await;
        match stored {
            Ok(sequence) => Ok(sequence),
            Err(error) => {
                self.forget_stream().await;
                Err(unavailable("storing", error))
            }
        }
    }

    /// The last `limit` messages of `room` with an id below `before` (all when
    /// `None`), oldest first. Reads the room's subject alone, forward, with an
    /// ordered consumer: at most the per-room limit of messages, never the stream.
    pub async fn history(
        &self,
        config: &GatewayConfig,
        room: Uuid,
        limit: usize,
        before: Option<u64>,
    ) -> Result<ChatPage, ChatError> {
        let stream = self.stream(config).await?;
        let read = self.read(&stream, room, limit, before).await;
        if read.is_err() {
            self.forget_stream().await;
        }
        read
    }

    async fn read(
        &self,
        stream: &stream::Stream,
        room: Uuid,
        limit: usize,
        before: Option<u64>,
    ) -> Result<ChatPage, ChatError> {
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: self.subject(room),
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|error| unavailable("creating a history consumer", error))?;
        // The room's messages when the consumer was made: what arrives later is
        // for the next read.
        let mut remaining = consumer.cached_info().num_pending;
        let mut kept: VecDeque<ChatEntry> = VecDeque::with_capacity(limit.saturating_add(1).min(1024));
        let mut older = false;
        if remaining == 0 {
            return Ok(ChatPage { messages: Vec::new(), next_before: None });
        }
        let mut messages = consumer.messages().await.map_err(|error| unavailable("reading history", error))?;
        while remaining > 0 {
            let message = match tokio::time::timeout(STALL_TIMEOUT, messages.next()).await {
                Err(_) => return Err(ChatError::Unavailable("no chat history from the stream in time".into())),
                Ok(None) => return Err(ChatError::Unavailable("the history consumer ended early".into())),
                Ok(Some(Err(error))) => return Err(unavailable("reading history", error)),
                Ok(Some(Ok(message))) => message,
            };
            remaining -= 1;
            let sequence =
                message.info().map_err(|error| unavailable("reading a message's metadata", error))?.stream_sequence;
            if before.is_some_and(|before| sequence >= before) {
                break;
            }
            let Ok(chat) = serde_json::from_slice::<StoredChat>(&message.payload) else {
                // Chat is not a source of truth: an unreadable message is skipped.
                tracing::warn!(sequence, "skipping an unreadable chat message");
                continue;
            };
            kept.push_back(ChatEntry {
                id: sequence,
                room_id: chat.room_id,
                user_id: chat.user_id,
                username: chat.username,
                message: chat.message,
                timestamp: chat.timestamp,
            });
            if kept.len() > limit {
                kept.pop_front();
                older = true;
            }
        }
        let next_before = if older { kept.front().map(|entry| entry.id) } else { None };
        Ok(ChatPage { messages: kept.into(), next_before })
    }
}
