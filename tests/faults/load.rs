//! The load: a few users each doing a mix of writes (register, login, rooms,
//! joins, leaves, mutes, contacts, profile) back to back at a bounded rate,
//! every one recorded.
//!
//! The driver only does what must store exactly one event of the write's own
//! type: a join only for someone it knows is out of that room, a leave only for
//! someone it knows is in, a mute once per stay, a contact added only when
//! absent, a profile or room change to a new value. After an answer that leaves
//! the state in doubt (a failure or an unknown outcome) the room stay or contact
//! pair is never used again, so a later write cannot be silently idempotent.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;
use tokio::sync::watch;

use crate::http::{Client, Kind, Outcome, Record, Request};

/// Users writing at once.
pub const USERS: usize = 6;
/// Each user's pace: at most one write per this long (so at most ~60 writes/s).
const PACE: Duration = Duration::from_millis(100);
const PASSWORD: &str = "correct horse 1";

struct Member {
    id: String,
    email: String,
    token: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Known {
    Absent,
    Present,
    /// A write about it failed or is unknown: the driver no longer knows, so it
    /// never writes about it again.
    InDoubt,
}

#[derive(Default)]
struct State {
    /// The writing users first, then users registered during the run.
    members: Vec<Member>,
    /// Room id and its host's index in `members`.
    rooms: Vec<(String, usize)>,
    /// (room index, member index) → in the room?
    stays: HashMap<(usize, usize), Known>,
    /// Stays the host has muted (muting twice stores nothing the second time).
    muted: HashSet<(usize, usize)>,
    /// (owner, contact) member indexes → on the owner's list?
    contacts: HashMap<(usize, usize), Known>,
}

pub struct Load {
    client: Client,
    state: Mutex<State>,
    records: Mutex<Vec<Record>>,
}

/// The running load; [`Running::stop`] ends it and returns every record.
pub struct Running {
    load: Arc<Load>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Registers and logs in the writing users (recorded like every other write).
    pub async fn prepare(base_url: String, epoch: Instant) -> Arc<Self> {
        let load =
            Arc::new(Self { client: Client::new(base_url, epoch), state: Mutex::default(), records: Mutex::default() });
        for user in 0..USERS {
            let member = load.register_and_login(&format!("writer{user}")).await;
            load.state
                .lock()
                .expect("state")
                .members
                .push(member.expect("the writing users register before any fault"));
        }
        load
    }

    /// Starts every user's loop.
    pub fn start(self: &Arc<Self>) -> Running {
        let (stop, stopped) = watch::channel(false);
        let tasks = (0..USERS)
            .map(|user| {
                let load = Arc::clone(self);
                let stopped = stopped.clone();
                tokio::spawn(async move { load.user_loop(user, stopped).await })
            })
            .collect();
        Running { load: Arc::clone(self), stop, tasks }
    }

    async fn user_loop(&self, user: usize, stopped: watch::Receiver<bool>) {
        let mut rng = StdRng::seed_from_u64(user as u64);
        while !*stopped.borrow() {
            let began = Instant::now();
            self.one_write(user, &mut rng).await;
            tokio::time::sleep(PACE.saturating_sub(began.elapsed())).await;
        }
    }

    fn record(&self, record: Record) -> Record {
        self.records.lock().expect("records").push(record.clone());
        record
    }

    async fn register_and_login(&self, name: &str) -> Option<Member> {
        let email = format!("{name}.{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({ "email": email, "password": PASSWORD, "firstName": name, "lastName": "Fault" });
        let registered = self.record(self.client.write(Kind::Register, &post("/auth/register", None, body)).await);
        let id = registered.data()?["user"]["id"].as_str()?.to_string();
        let login = json!({ "email": email, "password": PASSWORD });
        let logged_in = self.record(self.client.write(Kind::Login, &post("/auth/login", None, login)).await);
        let token = logged_in.data()?["token"].as_str()?.to_string();
        Some(Member { id, email, token })
    }

    /// Picks a write for `user` by weight, falling back to a profile change when
    /// the pick has no target yet.
    async fn one_write(&self, user: usize, rng: &mut StdRng) {
        let roll = rng.random_range(0..100);
        let done = match roll {
            0..3 => self.register(rng).await,
            3..6 => self.login(user).await,
            6..16 => self.create_room(user).await,
            16..26 => self.update_room(user, rng).await,
            26..48 => self.join(user, rng).await,
            48..62 => self.leave(user, rng).await,
            62..70 => self.mute(user, rng).await,
            70..80 => self.add_contact(user, rng).await,
            80..88 => self.remove_contact(user, rng).await,
            _ => false,
        };
        if !done {
            self.update_profile(user).await;
        }
    }

    async fn register(&self, rng: &mut StdRng) -> bool {
        let name = format!("joiner{}", rng.random_range(0..1000));
        if let Some(member) = self.register_and_login(&name).await {
            self.state.lock().expect("state").members.push(member);
        }
        true
    }

    async fn login(&self, user: usize) -> bool {
        let email = self.state.lock().expect("state").members[user].email.clone();
        let body = json!({ "email": email, "password": PASSWORD });
        self.record(self.client.write(Kind::Login, &post("/auth/login", None, body)).await);
        true
    }

    async fn create_room(&self, user: usize) -> bool {
        let token = self.token(user);
        let body = json!({ "name": format!("room of writer{user}"), "maxUsers": 100 });
        let record = self.record(self.client.write(Kind::CreateRoom, &post("/rooms", Some(token), body)).await);
        if let Some(id) = record.data().and_then(|data| data["id"].as_str()) {
            self.state.lock().expect("state").rooms.push((id.to_string(), user));
        }
        true
    }

    async fn update_room(&self, user: usize, rng: &mut StdRng) -> bool {
        let own: Vec<String> = {
            let state = self.state.lock().expect("state");
            state.rooms.iter().filter(|(_, host)| *host == user).map(|(id, _)| id.clone()).collect()
        };
        let Some(room) = pick(&own, rng) else { return false };
        let body = json!({ "description": format!("changed {}", uuid::Uuid::new_v4().simple()) });
        let request = Request {
            method: Method::PUT,
            path: format!("/rooms/{room}"),
            token: Some(self.token(user)),
            body: Some(body),
        };
        self.record(self.client.write(Kind::UpdateRoom, &request).await);
        true
    }

    async fn join(&self, user: usize, rng: &mut StdRng) -> bool {
        let (room, id) = {
            let state = self.state.lock().expect("state");
            let out: Vec<usize> = (0..state.rooms.len())
                .filter(|room| state.stays.get(&(*room, user)).copied().unwrap_or(Known::Absent) == Known::Absent)
                .collect();
            let Some(&room) = pick(&out, rng) else { return false };
            (room, state.rooms[room].0.clone())
        };
        let request = Request {
            method: Method::POST,
            path: format!("/rooms/{id}/join"),
            token: Some(self.token(user)),
            body: None,
        };
        let record = self.record(self.client.write(Kind::Join, &request).await);
        self.learn(|state| &mut state.stays, (room, user), &record, Known::Present);
        true
    }

    async fn leave(&self, user: usize, rng: &mut StdRng) -> bool {
        let (room, id) = {
            let state = self.state.lock().expect("state");
            let inside: Vec<usize> = (0..state.rooms.len())
                .filter(|room| state.stays.get(&(*room, user)) == Some(&Known::Present))
                .collect();
            let Some(&room) = pick(&inside, rng) else { return false };
            (room, state.rooms[room].0.clone())
        };
        let request = Request {
            method: Method::POST,
            path: format!("/rooms/{id}/leave"),
            token: Some(self.token(user)),
            body: None,
        };
        let record = self.record(self.client.write(Kind::Leave, &request).await);
        self.learn(|state| &mut state.stays, (room, user), &record, Known::Absent);
        true
    }

    async fn mute(&self, user: usize, rng: &mut StdRng) -> bool {
        let (stay, room_id, target_id) = {
            let state = self.state.lock().expect("state");
            let candidates: Vec<(usize, usize)> = state
                .stays
                .iter()
                .filter(|((room, target), known)| {
                    **known == Known::Present
                        && state.rooms[*room].1 == user
                        && !state.muted.contains(&(*room, *target))
                })
                .map(|(stay, _)| *stay)
                .collect();
            let Some(&(room, target)) = pick(&candidates, rng) else { return false };
            ((room, target), state.rooms[room].0.clone(), state.members[target].id.clone())
        };
        // Whatever the answer, this stay is never muted again.
        self.state.lock().expect("state").muted.insert(stay);
        let path = format!("/rooms/{room_id}/participants/{target_id}/mute");
        let request = Request { method: Method::POST, path, token: Some(self.token(user)), body: None };
        self.record(self.client.write(Kind::Mute, &request).await);
        true
    }

    async fn add_contact(&self, user: usize, rng: &mut StdRng) -> bool {
        let (other, other_id) = {
            let state = self.state.lock().expect("state");
            let absent: Vec<usize> = (0..state.members.len())
                .filter(|other| *other != user)
                .filter(|other| state.contacts.get(&(user, *other)).copied().unwrap_or(Known::Absent) == Known::Absent)
                .collect();
            let Some(&other) = pick(&absent, rng) else { return false };
            (other, state.members[other].id.clone())
        };
        let body = json!({ "contactId": other_id });
        let record = self
            .record(self.client.write(Kind::AddContact, &post("/users/contacts", Some(self.token(user)), body)).await);
        self.learn(|state| &mut state.contacts, (user, other), &record, Known::Present);
        true
    }

    async fn remove_contact(&self, user: usize, rng: &mut StdRng) -> bool {
        let (other, other_id) = {
            let state = self.state.lock().expect("state");
            let present: Vec<usize> = (0..state.members.len())
                .filter(|other| state.contacts.get(&(user, *other)) == Some(&Known::Present))
                .collect();
            let Some(&other) = pick(&present, rng) else { return false };
            (other, state.members[other].id.clone())
        };
        let path = format!("/users/contacts/{other_id}");
        let request = Request { method: Method::DELETE, path, token: Some(self.token(user)), body: None };
        let record = self.record(self.client.write(Kind::RemoveContact, &request).await);
        self.learn(|state| &mut state.contacts, (user, other), &record, Known::Absent);
        true
    }

    async fn update_profile(&self, user: usize) {
        let body = json!({ "firstName": format!("Writer {}", uuid::Uuid::new_v4().simple()) });
        let request = Request {
            method: Method::PUT,
            path: "/users/profile".into(),
            token: Some(self.token(user)),
            body: Some(body),
        };
        self.record(self.client.write(Kind::UpdateProfile, &request).await);
    }

    fn token(&self, user: usize) -> String {
        self.state.lock().expect("state").members[user].token.clone()
    }

    /// Sets what the driver knows after `record`: `then` when acknowledged, in
    /// doubt otherwise.
    fn learn(
        &self,
        map: impl FnOnce(&mut State) -> &mut HashMap<(usize, usize), Known>,
        pair: (usize, usize),
        record: &Record,
        then: Known,
    ) {
        let known = if record.outcome() == Outcome::Acknowledged { then } else { Known::InDoubt };
        map(&mut self.state.lock().expect("state")).insert(pair, known);
    }
}

impl Running {
    /// Forgets who is in which room and on whose contact list: after the server
    /// lost data, what the driver learnt from acknowledged writes may be gone.
    pub fn forget(&self) {
        let mut state = self.load.state.lock().expect("state");
        let State { stays, contacts, .. } = &mut *state;
        stays.values_mut().chain(contacts.values_mut()).for_each(|known| *known = Known::InDoubt);
    }

    /// Stops issuing writes, waits for those in flight (and their retries) to
    /// settle, and returns every record of the run.
    pub async fn stop(self) -> Vec<Record> {
        self.stop.send_replace(true);
        for task in self.tasks {
            task.await.expect("a user's loop does not panic");
        }
        std::mem::take(&mut *self.load.records.lock().expect("records"))
    }
}

fn post(path: &str, token: Option<String>, body: serde_json::Value) -> Request {
    Request { method: Method::POST, path: path.into(), token, body: Some(body) }
}

fn pick<'a, T>(items: &'a [T], rng: &mut StdRng) -> Option<&'a T> {
    (!items.is_empty()).then(|| &items[rng.random_range(0..items.len())])
}
