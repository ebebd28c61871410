//! Which simulcast layers of each published track some subscriber needs, so
//! the others can be paused at the publisher (`publisher_layers`, SPEC §9).
//!
//! Each subscriber leg of a simulcast track says which layer it wants (from the
//! size its client shows the video at and its downlink) and which it forwards
//! (another while the wanted one does not come). Only layers above the highest
//! of those are paused: a browser may not send its lowest layers at all (a
//! small camera) and drops its top ones when its uplink is short, so pausing a
//! layer below one that is needed could leave nothing to forward. Pure: the
//! room core feeds it and sends what it answers.

use std::collections::HashMap;

use crate::simulcast::{LAYERS, rid_of_layer};
use crate::source::SourceId;

/// Which layers are on, lowest first.
pub type ActiveLayers = [bool; LAYERS];

#[derive(Default)]
pub struct LayerDemand {
    /// Per simulcast track: the layers each subscriber peer needs.
    wants: HashMap<SourceId, HashMap<u64, ActiveLayers>>,
    /// What the publisher was last told, per track.
    told: HashMap<SourceId, ActiveLayers>,
}

impl LayerDemand {
    /// Subscriber `peer` needs `layers` of `source` (none: it no longer subscribes).
    /// Answers the layers to tell the publisher when they changed.
    pub fn want(&mut self, source: SourceId, peer: u64, layers: &[u8]) -> Option<ActiveLayers> {
        let wants = self.wants.entry(source).or_default();
        if layers.is_empty() {
            wants.remove(&peer);
        } else {
            let mut needed = [false; LAYERS];
            for layer in layers {
                needed[usize::from(*layer).min(LAYERS - 1)] = true;
            }
            wants.insert(peer, needed);
        }
        self.changed(source)
    }

    /// `peer` no longer needs `source`, if it said it did: unlike `want` with no
    /// layers, a track nobody asked layers of is left alone (an audio track, a
    /// single-stream video).
    pub fn unwant(&mut self, source: SourceId, peer: u64) -> Option<ActiveLayers> {
        self.wants.get_mut(&source)?.remove(&peer)?;
        self.changed(source)
    }

    /// A subscriber peer is gone: the tracks whose needed layers changed.
    pub fn forget_peer(&mut self, peer: u64) -> Vec<(SourceId, ActiveLayers)> {
        let mut sources: Vec<SourceId> =
            self.wants.iter_mut().filter_map(|(source, wants)| wants.remove(&peer).map(|_| *source)).collect();
        sources.sort_unstable();
        sources.into_iter().filter_map(|source| Some((source, self.changed(source)?))).collect()
    }

    /// A track is no longer published.
    pub fn forget_source(&mut self, source: SourceId) {
        self.wants.remove(&source);
        self.told.remove(&source);
    }

    fn changed(&mut self, source: SourceId) -> Option<ActiveLayers> {
        let highest = self
            .wants
            .get(&source)
            .into_iter()
            .flat_map(|wants| wants.values())
            .filter_map(|needed| needed.iter().rposition(|on| *on))
            .max()
            .unwrap_or(0);
        let active: ActiveLayers = std::array::from_fn(|layer| layer <= highest);
        let before = self.told.insert(source, active);
        // Until a leg says otherwise the publisher sends every layer: nothing to tell.
        (before.unwrap_or([true; LAYERS]) != active).then_some(active)
    }
}

/// The rids of the layers that are on, as `publisher_layers` lists them.
pub fn active_rids(active: &ActiveLayers) -> Vec<&'static str> {
    (0..LAYERS).filter(|layer| active[*layer]).map(|layer| rid_of_layer(layer as u8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_above_the_highest_needed_are_paused_and_come_back_when_needed() {
        let mut demand = LayerDemand::default();
        let camera = SourceId(1);
        assert_eq!(demand.want(camera, 10, &[2]), None, "every layer is needed, as sent");
        assert_eq!(demand.want(camera, 11, &[1]), None);
        assert_eq!(demand.want(camera, 10, &[]), Some([true, true, false]), "the top layer is not needed");
        assert_eq!(demand.want(camera, 11, &[0]), Some([true, false, false]));
        assert_eq!(demand.want(camera, 12, &[0]), None, "no change");
        // The wanted layer does not come: the one forwarded instead stays on.
        assert_eq!(demand.want(camera, 12, &[0, 1]), Some([true, true, false]));
        assert_eq!(demand.forget_peer(12), vec![(camera, [true, false, false])]);
        assert_eq!(demand.forget_peer(12), vec![], "forgotten once");
        assert_eq!(demand.want(camera, 11, &[2]), Some([true, true, true]));
        assert_eq!(active_rids(&[true, true, false]), ["q", "h"]);
        demand.forget_source(camera);
        assert_eq!(demand.want(camera, 11, &[1]), Some([true, true, false]), "a new start");
    }
}
