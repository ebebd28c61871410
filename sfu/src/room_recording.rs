//! The room core's part in recording (SPEC §10): while a room records, each
//! publication of a recordable codec in it is recorded, from when the recording
//! starts or the track is published, whichever is later, until the recording
//! stops, the track goes or its peer closes. Each start gets a new file: a
//! publisher who leaves and comes back, or restarts a track, gets another one.
//! The recording thread is told with [`CoreOutput::Record`]; the publisher's
//! worker, which hands it the packets, with [`WorkerInput::Record`].

use uuid::Uuid;

use super::{CoreOutput, RoomCore};
use crate::inputs::WorkerInput;
use crate::peer::SOURCE_BITS;
use crate::recorder::{RecordOrder, recording_codec};
use crate::source::{SourceId, Subscription};

impl RoomCore {
    /// The room started (`true`) or stopped recording.
    pub(super) fn set_recording(&mut self, room: Uuid, on: bool) {
        let changed = if on { self.recording.insert(room) } else { self.recording.remove(&room) };
        if !changed {
            return;
        }
        for peer in self.room_peers(room) {
            let published = self.peers.get(&peer).map(|entry| entry.published.clone()).unwrap_or_default();
            for subscription in published {
                if on {
                    self.record_publication(peer, &subscription);
                } else {
                    self.stop_recording_source(subscription.source);
                }
            }
        }
    }

    /// A track was published by `peer`: recorded if its room records.
    pub(super) fn record_publication(&mut self, peer: u64, subscription: &Subscription) {
        let Some(entry) = self.peers.get(&peer) else { return };
        if entry.closing || !self.recording.contains(&entry.key.room) {
            return;
        }
        let Some(codec) = recording_codec(&subscription.codec.mime_type) else {
            tracing::debug!(mime = %subscription.codec.mime_type, "a track of a codec that is not recorded");
            return;
        };
        let source = subscription.source;
        if !self.recorded.insert(source) {
            return;
        }
        let (room, user) = (entry.key.room, entry.key.user);
        self.outputs.push_back(CoreOutput::Record(RecordOrder::Start { source, room, user, codec }));
        self.send(peer, WorkerInput::Record { peer, source, on: true });
    }

    /// The track is no longer recorded (its file is completed).
    pub(super) fn stop_recording_source(&mut self, source: SourceId) {
        if !self.recorded.remove(&source) {
            return;
        }
        self.outputs.push_back(CoreOutput::Record(RecordOrder::Stop { source }));
        if let Some(active) = self.layer_demand.unwant(source, crate::recorder::RECORDER_PEER) {
            self.tell_layers(source, active);
        }
        let publisher = source.0 >> SOURCE_BITS;
        self.send(publisher, WorkerInput::Record { peer: publisher, source, on: false });
    }
}
