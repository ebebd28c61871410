//! Which simulcast layers of each published track some subscriber needs, so
//! the others can be paused at the publisher (`publisher_layers`, SPEC §9).
//!
//! Each subscriber leg of a simulcast track says which layer it wants (from the
//! size its client shows the video at and its downlink); a layer is needed when
//! some leg wants it. The lowest layer always stays on, so a new subscriber has
//! something to start with at once. Pure: the room core feeds it and sends what
//! it answers.

use std::collections::HashMap;

use crate::simulcast::{LAYERS, rid_of_layer};
use crate::source::SourceId;

/// Which layers are on, lowest first.
pub type ActiveLayers = [bool; LAYERS];

#[derive(Default)]
pub struct LayerDemand {
    /// Per simulcast track: each subscriber peer's wanted layer.
    wants: HashMap<SourceId, HashMap<u64, u8>>,
    /// What the publisher was last told, per track.
    told: HashMap<SourceId, ActiveLayers>,
}

impl LayerDemand {
    /// Subscriber `peer` wants `layer` of `source` (`None`: no longer subscribes).
    /// Answers the layers to tell the publisher when they changed.
    pub fn want(&mut self, source: SourceId, peer: u64, layer: Option<u8>) -> Option<ActiveLayers> {
        let wants = self.wants.entry(source).or_default();
        match layer {
            Some(layer) => wants.insert(peer, layer.min(LAYERS as u8 - 1)),
            None => wants.remove(&peer),
        };
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
        let mut active = [false; LAYERS];
        active[0] = true;
        for layer in self.wants.get(&source).into_iter().flat_map(|wants| wants.values()) {
            active[usize::from(*layer)] = true;
        }
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
    fn layers_no_subscriber_wants_are_paused_and_come_back_when_wanted() {
        let mut demand = LayerDemand::default();
        let camera = SourceId(1);
        assert_eq!(demand.want(camera, 10, Some(2)), Some([true, false, true]), "the middle layer is not needed");
        assert_eq!(demand.want(camera, 11, Some(2)), None, "no change");
        assert_eq!(demand.want(camera, 12, Some(1)), Some([true, true, true]));
        assert_eq!(demand.want(camera, 12, Some(0)), Some([true, false, true]));
        assert_eq!(demand.want(camera, 10, None), None, "another still wants the top");
        assert_eq!(demand.forget_peer(11), vec![(camera, [true, false, false])]);
        assert_eq!(demand.forget_peer(11), vec![], "forgotten once");
        assert_eq!(active_rids(&[true, false, true]), ["q", "f"]);
        demand.forget_source(camera);
        assert_eq!(demand.want(camera, 12, Some(2)), Some([true, false, true]), "a new start");
    }
}
