//! Throttles of what one user may do through REST: guess room passwords, create
//! rooms, and ask for password reset emails to one address.
//!
//! Failed joins are counted in this process (a refused command leaves no event to
//! count elsewhere), so with several gateways behind a balancer each allows its own
//! share. Room creation is counted in the rooms read model, which every gateway
//! shares; this process only makes one user's creations queue behind each other so
//! that concurrent requests cannot all pass the same count.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rapat_domain::ids::{RoomId, UserId};

use crate::config::GatewayConfig;

pub struct Limits {
    pub join_failures_per_user_and_room: FailureWindow<(UserId, RoomId)>,
    pub join_failures_per_room: FailureWindow<RoomId>,
    pub room_creation: UserLocks,
    /// Password reset requests per (normalised) email address.
    pub password_resets_per_address: FailureWindow<String>,
}

impl Limits {
    pub fn new(config: &GatewayConfig) -> Self {
        let joins = config.room_join_failures;
        Self {
            join_failures_per_user_and_room: FailureWindow::new(joins.per_user_and_room, joins.window),
            join_failures_per_room: FailureWindow::new(joins.per_room, joins.window),
            room_creation: UserLocks::new(),
            password_resets_per_address: FailureWindow::new(
                config.password_reset_per_address,
                config.password_reset_window,
            ),
        }
    }
}

/// At most `limit` failures per key within any `window`: the failures of each key
/// are remembered (at most `limit` of them) until they are older than the window.
pub struct FailureWindow<K> {
    limit: u32,
    window: Duration,
    recent: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> FailureWindow<K> {
    /// Keys remembered before a sweep drops those whose failures all expired.
    const SWEEP_ABOVE: usize = 10_000;

    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window, recent: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` while `key` has `limit` failures within the window: `wait` is
    /// how long until the oldest of them expires. A limit of 0 turns it off.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(failures) = recent.get_mut(key) else { return Ok(()) };
        self.expire(failures, now);
        match failures.front() {
            Some(oldest) if failures.len() >= self.limit as usize => Err(self.window.saturating_sub(now - *oldest)),
            _ => Ok(()),
        }
    }

    pub fn record(&self, key: K, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() >= Self::SWEEP_ABOVE {
            recent.retain(|_, failures| failures.back().is_some_and(|last| now.duration_since(*last) < self.window));
        }
        let failures = recent.entry(key).or_default();
        self.expire(failures, now);
        if failures.len() >= self.limit as usize {
            failures.pop_front();
        }
        failures.push_back(now);
    }

    fn expire(&self, failures: &mut VecDeque<Instant>, now: Instant) {
        while failures.front().is_some_and(|oldest| now.duration_since(*oldest) >= self.window) {
            failures.pop_front();
        }
    }
}

/// A fixed set of locks, one picked per user: one user's room creations run one
/// at a time in this process (count, create, see it counted), while memory stays
/// constant however many users there are. Two users may share a lock; they then
/// wait for each other's short creation.
pub struct UserLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl UserLocks {
    const STRIPES: usize = 256;

    fn new() -> Self {
        Self { stripes: (0..Self::STRIPES).map(|_| tokio::sync::Mutex::new(())).collect() }
    }

    pub async fn lock(&self, user: UserId) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        user.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % Self::STRIPES as u64).unwrap_or(0);
        self.stripes[index].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_at_its_limit_until_its_oldest_failure_expires() {
        let window = FailureWindow::new(2, Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(window.check(&"a", start), Ok(()));
        window.record("a", start);
        window.record("a", start + Duration::from_secs(10));
        assert_eq!(window.check(&"a", start + Duration::from_secs(20)), Err(Duration::from_secs(40)));
        assert_eq!(window.check(&"b", start + Duration::from_secs(20)), Ok(()), "keys are counted apart");
        assert_eq!(window.check(&"a", start + Duration::from_secs(60)), Ok(()), "the oldest failure expired");
    }

    #[test]
    fn a_limit_of_zero_turns_the_window_off() {
        let window = FailureWindow::new(0, Duration::from_secs(60));
        let now = Instant::now();
        window.record("a", now);
        assert_eq!(window.check(&"a", now), Ok(()));
    }
}
