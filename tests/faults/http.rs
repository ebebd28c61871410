//! One write as the client sees it: sent with an `Idempotency-Key` (also its
//! `X-Request-Id`, which rapat stores as the events' correlation id, so the
//! events of every request can be found in the stream), retried with the same
//! key while its outcome is unknown, and every attempt's answer and wait kept.

use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one attempt may take before the client gives up on it (an unknown
/// outcome). Longer than any fault's outage, so a hanging request shows its wait.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(75);
/// How long a write whose outcome is unknown is retried with its key.
pub const SETTLE_WITHIN: Duration = Duration::from_secs(90);
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What the write was meant to do; each kind stores one event of its own type
/// (`primary_event`) when it is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Register,
    Login,
    CreateRoom,
    UpdateRoom,
    Join,
    Leave,
    Mute,
    AddContact,
    RemoveContact,
    UpdateProfile,
}

impl Kind {
    /// `(aggregate type, event type)` of the event that shows the write applied.
    pub fn primary_event(self) -> (&'static str, &'static str) {
        match self {
            Self::Register => ("account", "AccountRegistered"),
            Self::Login => ("session", "SessionStarted"),
            Self::CreateRoom => ("room", "RoomCreated"),
            Self::UpdateRoom => ("room", "RoomSettingsUpdated"),
            Self::Join => ("room", "ParticipantJoined"),
            Self::Leave => ("room", "ParticipantLeft"),
            Self::Mute => ("room", "ParticipantMutedByHost"),
            Self::AddContact => ("contacts", "ContactAdded"),
            Self::RemoveContact => ("contacts", "ContactRemoved"),
            Self::UpdateProfile => ("account", "ProfileUpdated"),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Answer {
    /// 2xx, with the envelope's `data`.
    Success { status: u16, data: Value },
    /// A definite refusal: any other status whose code is not `outcome_unknown`.
    Refused { status: u16, code: String },
    /// `outcome_unknown`, or the connection failed after the request was sent
    /// (reset, timeout): it may or may not have been applied.
    Unknown { what: String },
    /// The connection could not be opened: the request never reached rapat.
    NotSent { what: String },
}

impl Answer {
    pub fn short(&self) -> String {
        match self {
            Self::Success { status, .. } => status.to_string(),
            Self::Refused { status, code } => format!("{status} {code}"),
            Self::Unknown { what } => format!("unknown: {what}"),
            Self::NotSent { what } => format!("not sent: {what}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Attempt {
    /// When it was sent, from the run's start.
    pub sent_at: Duration,
    pub took: Duration,
    pub answer: Answer,
}

/// How a write ended for its client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Acknowledged,
    /// A definite failure (or never sent): the client believes nothing changed.
    Failed,
    /// Still unknown when the client stopped retrying.
    Unsettled,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub key: String,
    pub kind: Kind,
    /// `METHOD /path`: with the ids the write was about.
    pub target: String,
    pub attempts: Vec<Attempt>,
}

impl Record {
    pub fn outcome(&self) -> Outcome {
        match self.attempts.last().map(|attempt| &attempt.answer) {
            Some(Answer::Success { .. }) => Outcome::Acknowledged,
            Some(Answer::Unknown { .. }) => Outcome::Unsettled,
            // A retry that could not connect leaves the first attempt's fate open.
            Some(Answer::NotSent { .. }) if self.had_unknown() => Outcome::Unsettled,
            _ => Outcome::Failed,
        }
    }

    pub fn had_unknown(&self) -> bool {
        self.attempts.iter().any(|attempt| matches!(attempt.answer, Answer::Unknown { .. }))
    }

    /// When the client got its final answer, from the run's start.
    pub fn answered_at(&self) -> Duration {
        self.attempts.last().map_or(Duration::ZERO, |attempt| attempt.sent_at + attempt.took)
    }

    pub fn longest_wait(&self) -> Duration {
        self.attempts.iter().map(|attempt| attempt.took).max().unwrap_or_default()
    }

    pub fn data(&self) -> Option<&Value> {
        match self.attempts.last().map(|attempt| &attempt.answer) {
            Some(Answer::Success { data, .. }) => Some(data),
            _ => None,
        }
    }
}

/// One request, resendable.
pub struct Request {
    pub method: reqwest::Method,
    pub path: String,
    pub token: Option<String>,
    pub body: Option<Value>,
}

pub struct Client {
    http: reqwest::Client,
    base_url: String,
    epoch: Instant,
}

impl Client {
    pub fn new(base_url: String, epoch: Instant) -> Self {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            // A fresh connection per request: a pooled one left over from a killed
            // server would turn a request it never saw into an unknown outcome.
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        Self { http, base_url, epoch }
    }

    /// Sends the write, and resends it with the same key while its outcome is
    /// unknown, for at most [`SETTLE_WITHIN`].
    pub async fn write(&self, kind: Kind, request: &Request) -> Record {
        let key = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let mut attempts = vec![self.send(&key, request).await];
        loop {
            let open = match &attempts[attempts.len() - 1].answer {
                Answer::Unknown { .. } => true,
                Answer::NotSent { .. } => attempts.len() > 1,
                _ => false,
            };
            if !open || started.elapsed() >= SETTLE_WITHIN {
                break;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
            attempts.push(self.send(&key, request).await);
        }
        Record { key, kind, target: format!("{} {}", request.method, request.path), attempts }
    }

    async fn send(&self, key: &str, request: &Request) -> Attempt {
        let sent = Instant::now();
        let mut builder = self
            .http
            .request(request.method.clone(), format!("{}/api/v1{}", self.base_url, request.path))
            .header("Idempotency-Key", key)
            .header("X-Request-Id", key);
        if let Some(token) = &request.token {
            builder = builder.bearer_auth(token);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let answer = match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.json::<Value>().await {
                    Ok(body) => classify(status, body),
                    Err(error) => Answer::Unknown { what: format!("{status}, body unreadable: {error}") },
                }
            }
            Err(error) if error.is_connect() => Answer::NotSent { what: error.to_string() },
            Err(error) => {
                Answer::Unknown { what: if error.is_timeout() { "timed out".into() } else { error.to_string() } }
            }
        };
        Attempt { sent_at: sent.duration_since(self.epoch), took: sent.elapsed(), answer }
    }
}

fn classify(status: u16, body: Value) -> Answer {
    let code = body["error"]["code"].as_str().or(body["code"].as_str()).unwrap_or_default().to_string();
    if (200..300).contains(&status) {
        Answer::Success { status, data: body["data"].clone() }
    } else if code == "outcome_unknown" {
        Answer::Unknown { what: format!("{status} outcome_unknown") }
    } else {
        Answer::Refused { status, code }
    }
}
