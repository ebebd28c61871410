//! An interceptor that only looks at what is read: each inbound packet goes to
//! a [`ReadFilter`], which may change or drop it; what is written passes
//! untouched. The SFU's own interceptors (`keyframe.rs`, `resends.rs`) are
//! such filters, and share this plumbing.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// What an inbound-only interceptor does with each packet read.
pub trait ReadFilter: Send + Sync {
    /// Whether `message` (changed or not) goes on up the chain.
    fn keep(&mut self, message: &mut TaggedPacket) -> bool;
}

pub struct ReadOnly<F> {
    filter: F,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl<F> ReadOnly<F> {
    pub fn new(filter: F) -> Self {
        Self { filter, reads: VecDeque::new(), writes: VecDeque::new() }
    }
}

impl<F: ReadFilter> Protocol<TaggedPacket, TaggedPacket, ()> for ReadOnly<F> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut message: TaggedPacket) -> Result<(), Self::Error> {
        if self.filter.keep(&mut message) {
            self.reads.push_back(message);
        }
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(message);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.writes.pop_front()
    }

    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        None
    }
}

impl<F: ReadFilter> Interceptor for ReadOnly<F> {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
