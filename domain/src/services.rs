//! Work the aggregates need from outside the domain. The domain declares it; the
//! write side (`rapat-commands`) implements it with argon2id on a blocking thread.

use std::sync::Arc;

use async_trait::async_trait;

use crate::credentials::{Password, PasswordHash};

/// The hashing service could not answer (not: the password was wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashingError {
    /// Every hashing worker stayed taken for as long as a caller may wait: hashing
    /// is bounded, so a flood of guesses queues instead of exhausting memory. The
    /// caller may try again shortly.
    #[error("password hashing is busy; try again shortly")]
    Busy,
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes new passwords and checks offered ones against stored hashes.
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashingError>;
    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashingError>;
}

/// The services handed to aggregates that need them (cqrs-es `Aggregate::Services`).
#[derive(Clone)]
pub struct DomainServices {
    pub passwords: Arc<dyn PasswordHasher>,
}

impl DomainServices {
    pub fn new(passwords: Arc<dyn PasswordHasher>) -> Self {
        Self { passwords }
    }
}

/// A reversible stand-in hasher for the domain's own given/when/then tests, where
/// the aggregate's decisions are under test and argon2's cost would only slow them
/// down. The real hasher is tested in `rapat-commands`.
#[cfg(any(test, feature = "test-support"))]
pub mod testing {
    use super::*;

    pub struct MarkedHasher;

    impl MarkedHasher {
        pub fn hash_of(password: &str) -> PasswordHash {
            PasswordHash::from_phc(format!("test-hash:{password}"))
        }

        pub fn services() -> DomainServices {
            DomainServices::new(Arc::new(MarkedHasher))
        }
    }

    #[async_trait]
    impl PasswordHasher for MarkedHasher {
        async fn hash(&self, password: &Password) -> Result<PasswordHash, HashingError> {
            Ok(Self::hash_of(password.expose()))
        }

        async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashingError> {
            Ok(Self::hash_of(password.expose()) == *hash)
        }
    }
}
