//! Argon2id password hashing, the domain's `PasswordHasher`.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash as PhcHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use rapat_domain::credentials::{Password, PasswordHash};
use rapat_domain::services::{HashingError, PasswordHasher};

/// Argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane). The
/// work runs on tokio's blocking pool so it never stalls the async workers.
#[derive(Clone)]
pub struct Argon2idHasher {
    params: Params,
}

impl Argon2idHasher {
    pub fn new() -> Self {
        Self { params: Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid") }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }
}

impl Default for Argon2idHasher {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl PasswordHasher for Argon2idHasher {
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashingError> {
        let hasher = self.clone();
        let password = password.clone();
        blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            hasher
                .argon2()
                .hash_password(password.expose().as_bytes(), &salt)
                .map(|phc| PasswordHash::from_phc(phc.to_string()))
                .map_err(|error| HashingError(error.to_string()))
        })
        .await
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashingError> {
        let hasher = self.clone();
        let password = password.clone();
        let hash = hash.clone();
        blocking(move || {
            let parsed = PhcHash::new(hash.as_phc()).map_err(|error| HashingError(error.to_string()))?;
            // The parameters stored in the hash win, so old hashes keep verifying
            // after the defaults change.
            match hasher.argon2().verify_password(password.expose().as_bytes(), &parsed) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::Password) => Ok(false),
                Err(error) => Err(HashingError(error.to_string())),
            }
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HashingError> + Send + 'static,
) -> Result<T, HashingError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| HashingError(format!("hashing task failed: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = Argon2idHasher::new();
        let password = Password::parse_for_account("correct horse 1".into()).expect("valid");
        let hash = hasher.hash(&password).await.expect("hashes");
        assert!(hash.as_phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify(&password, &hash).await.expect("verifies"));
        let wrong = Password::parse_candidate("correct horse 2".into()).expect("valid");
        assert!(!hasher.verify(&wrong, &hash).await.expect("verifies"));
        let again = hasher.hash(&password).await.expect("hashes");
        assert_ne!(hash, again, "every hash has its own salt");
    }

    #[tokio::test]
    async fn a_malformed_hash_is_an_error_not_a_panic() {
        let hasher = Argon2idHasher::new();
        let password = Password::parse_candidate("x".into()).expect("valid");
        let result = hasher.verify(&password, &PasswordHash::from_phc("not a phc string".into())).await;
        assert!(result.is_err());
    }
}
