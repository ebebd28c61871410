//! The conductor: the thin async shell around the room core (`room_core.rs`).
//!
//! One tokio task owns the core, so there is no shared mutable state between
//! workers. It feeds the core what arrives on its channel (signaling, room
//! changes, worker reports, admission answers) and does what the core asks:
//! hands inputs to workers, sends messages to clients, runs admission checks as
//! tasks, and keeps the shared peer count and active-room set up to date.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::Sender;
use futures::future::BoxFuture;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use uuid::Uuid;

use crate::inputs::{Admitted, CoreInput, Refused, WorkerInput};
use crate::placement::ActiveRooms;
use crate::recorder::RecordOrder;
use crate::room_core::{CoreOutput, RoomCore};
use crate::signal::Outgoing;

/// Whether a user may open media in a room, from the room's events.
pub trait Admission: Send + Sync + 'static {
    fn check(&self, room: Uuid, user: Uuid) -> BoxFuture<'static, Result<Admitted, Refused>>;
}

/// What the conductor shares with the handle, and the per-user cap.
pub struct PeerLimits {
    pub max_peers_per_user: usize,
    /// The rooms with peers on this node, shared with the room placement.
    pub active: ActiveRooms,
    pub peer_count: Arc<AtomicUsize>,
}

pub struct Conductor {
    core: RoomCore,
    inputs: UnboundedReceiver<CoreInput>,
    myself: UnboundedSender<CoreInput>,
    workers: Vec<Sender<WorkerInput>>,
    signals: UnboundedSender<Outgoing>,
    admission: Arc<dyn Admission>,
    active: ActiveRooms,
    /// How many peers exist (closing ones included), for metrics.
    peer_count: Arc<AtomicUsize>,
    /// The recording thread's orders.
    recorder: Option<Sender<RecordOrder>>,
}

impl Conductor {
    pub fn new(
        inputs: UnboundedReceiver<CoreInput>,
        myself: UnboundedSender<CoreInput>,
        workers: Vec<Sender<WorkerInput>>,
        signals: UnboundedSender<Outgoing>,
        admission: Arc<dyn Admission>,
        limits: PeerLimits,
    ) -> Self {
        Self {
            core: RoomCore::new(workers.len(), limits.max_peers_per_user),
            inputs,
            myself,
            workers,
            signals,
            admission,
            active: limits.active,
            peer_count: limits.peer_count,
            recorder: None,
        }
    }

    pub fn with_recorder(self, orders: Sender<RecordOrder>) -> Self {
        Self { recorder: Some(orders), ..self }
    }

    pub async fn run(mut self) {
        loop {
            // The core's only timer is active speakers'; it reads no clock, so the time comes from here.
            let timer = self.core.poll_timeout();
            let sleep = tokio::time::sleep_until(timer.unwrap_or_else(std::time::Instant::now).into());
            tokio::select! {
                input = self.inputs.recv() => match input {
                    Some(input) => self.core.handle_input(input),
                    None => return,
                },
                () = sleep, if timer.is_some() => self.core.handle_timeout(std::time::Instant::now()),
            }
            while let Some(output) = self.core.poll_output() {
                self.perform(output);
            }
            self.peer_count.store(self.core.peer_count(), Ordering::Relaxed);
        }
    }

    fn perform(&self, output: CoreOutput) {
        match output {
            CoreOutput::ToWorker { worker, input } => {
                if let Some(worker) = self.workers.get(worker) {
                    let _ = worker.send(input);
                }
            }
            CoreOutput::Signal(outgoing) => {
                let _ = self.signals.send(outgoing);
            }
            CoreOutput::CheckAdmission(key) => {
                let check = self.admission.check(key.room, key.user);
                let myself = self.myself.clone();
                tokio::spawn(async move {
                    let result = check.await;
                    let _ = myself.send(CoreInput::Checked { key, result });
                });
            }
            CoreOutput::RoomOpened(room) => {
                if let Ok(mut active) = self.active.lock() {
                    active.insert(room);
                }
            }
            CoreOutput::RoomClosed(room) => {
                if let Ok(mut active) = self.active.lock() {
                    active.remove(&room);
                }
            }
            CoreOutput::Record(order) => {
                if let Some(recorder) = &self.recorder {
                    let _ = recorder.send(order);
                }
            }
        }
    }
}
