//! The SFU: webrtc-rs peer connections and track forwarding, admitted and stopped
//! by room events. Not built yet: it arrives with the realtime issue.
