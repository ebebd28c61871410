//! Argon2id password hashing, the domain's `PasswordHasher`.
//!
//! Each hash needs 19 MiB of working memory. Hashing on tokio's blocking pool
//! (hundreds of threads, each allocating its own 19 MiB in its own malloc arena)
//! let a flood of wrong passwords grow the process by gigabytes that were never
//! given back. Here a fixed set of worker threads does all hashing, each reusing
//! one buffer of argon2 blocks, so memory is bounded by the worker count; callers
//! wait for a free worker for a bounded time and are told "busy" after it.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash as PhcHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use rapat_domain::credentials::{Password, PasswordHash};
use rapat_domain::services::{HashingError, PasswordHasher};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How much hashing runs at once, and how long a caller waits for its turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashingLimits {
    /// Hashes computed at once; each worker keeps its own 19 MiB of argon2
    /// memory for reuse. Defaults to the number of cores.
    pub workers: usize,
    /// A hash that waited this long for a free worker is refused with
    /// `HashingError::Busy`. Defaults to 5 seconds.
    pub queue_timeout: Duration,
}

impl Default for HashingLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self { workers: cores, queue_timeout: Duration::from_secs(5) }
    }
}

/// Argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane), run
/// on a bounded pool of worker threads. Clones share the pool.
#[derive(Clone)]
pub struct Argon2idHasher {
    params: Params,
    pool: Arc<WorkerPool>,
}

impl Argon2idHasher {
    /// A hasher with the default limits.
    pub fn new() -> Self {
        Self::with_limits(HashingLimits::default())
    }

    pub fn with_limits(limits: HashingLimits) -> Self {
        Self {
            params: Params::new(19 * 1024, 2, 1, None).expect("constant argon2 parameters are valid"),
            pool: Arc::new(WorkerPool::start(limits)),
        }
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
        let params = self.params.clone();
        let password = password.clone();
        self.pool
            .run(move |memory| {
                let salt = SaltString::generate(&mut OsRng);
                let output =
                    compute(Algorithm::Argon2id, Version::V0x13, params.clone(), password.expose(), &salt, memory)?;
                let phc = PhcHash {
                    algorithm: Algorithm::Argon2id.ident(),
                    version: Some(Version::V0x13.into()),
                    params: ParamsString::try_from(&params).map_err(failed)?,
                    salt: Some(salt.as_salt()),
                    hash: Some(output),
                };
                Ok(PasswordHash::from_phc(phc.to_string()))
            })
            .await
    }

    async fn verify(&self, password: &Password, hash: &PasswordHash) -> Result<bool, HashingError> {
        // Parsed before queueing: a malformed hash costs no worker time.
        let stored = StoredHash::parse(hash)?;
        let password = password.clone();
        self.pool
            .run(move |memory| {
                let salt = SaltString::from_b64(&stored.salt).map_err(failed)?;
                let output =
                    compute(stored.algorithm, stored.version, stored.params, password.expose(), &salt, memory)?;
                // `Output`'s equality is constant-time.
                Ok(output == stored.output)
            })
            .await
    }
}

/// What verifying needs from a stored PHC string. The parameters stored in the
/// hash win, so old hashes keep verifying after the defaults change.
struct StoredHash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: String,
    output: Output,
}

impl StoredHash {
    /// Argon2 memory a stored hash may ask for: our own hashes use 19 MiB; a
    /// larger cost in a stored string is refused rather than allocated.
    const MAX_MEMORY_KIB: u32 = 256 * 1024;

    fn parse(hash: &PasswordHash) -> Result<Self, HashingError> {
        let phc = PhcHash::new(hash.as_phc()).map_err(failed)?;
        let algorithm = Algorithm::try_from(phc.algorithm).map_err(failed)?;
        let version = phc.version.map(Version::try_from).transpose().map_err(failed)?.unwrap_or_default();
        let params = Params::try_from(&phc).map_err(failed)?;
        if params.m_cost() > Self::MAX_MEMORY_KIB {
            return Err(HashingError::Failed(format!("stored hash asks for {} KiB of memory", params.m_cost())));
        }
        let salt = phc.salt.ok_or_else(|| HashingError::Failed("stored hash has no salt".into()))?.as_str().to_owned();
        let output = phc.hash.ok_or_else(|| HashingError::Failed("stored hash has no output".into()))?;
        Ok(Self { algorithm, version, params, salt, output })
    }
}

/// One argon2 computation in `memory`, grown (once) if these parameters need
/// more than it has.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &str,
    salt: &SaltString,
    memory: &mut Vec<Block>,
) -> Result<Output, HashingError> {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let output_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let argon2 = Argon2::new(algorithm, version, params);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes).map_err(failed)?;
    Output::init_with(output_len, |out| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, memory.as_mut_slice())?;
        Ok(())
    })
    .map_err(failed)
}

fn failed(error: impl std::fmt::Display) -> HashingError {
    HashingError::Failed(error.to_string())
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Worker threads fed by one queue. A caller holds a permit from before its job
/// is queued until a worker has finished it, so at most `workers` jobs exist at
/// a time, even when callers give up waiting for their answer.
struct WorkerPool {
    permits: Arc<Semaphore>,
    jobs: Mutex<mpsc::Sender<Job>>,
    queue_timeout: Duration,
}

impl WorkerPool {
    fn start(limits: HashingLimits) -> Self {
        let workers = limits.workers.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..workers {
            let queue = Arc::clone(&queue);
            // The thread ends when the pool (the sending side) is dropped.
            let spawned = std::thread::Builder::new().name(format!("argon2-{index}")).spawn(move || {
                let mut memory: Vec<Block> = Vec::new();
                loop {
                    let next = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    let Ok(job) = next else { break };
                    // A panic loses that one answer (its caller sees an error),
                    // never the worker.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
                }
            });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password hashing thread");
            }
        }
        Self { permits: Arc::new(Semaphore::new(workers)), jobs: Mutex::new(jobs), queue_timeout: limits.queue_timeout }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, HashingError> + Send + 'static,
    ) -> Result<T, HashingError> {
        let permit: OwnedSemaphorePermit =
            tokio::time::timeout(self.queue_timeout, Arc::clone(&self.permits).acquire_owned())
                .await
                .map_err(|_| {
                    metrics::counter!("rapat_password_hashing_busy_total").increment(1);
                    HashingError::Busy
                })?
                .map_err(failed)?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let result = work(memory);
            // Freed before answering, so a caller that has its answer can count
            // on the worker being free.
            drop(permit);
            let _ = answer.send(result);
        });
        self.jobs
            .lock()
            .map_err(|_| HashingError::Failed("the hashing queue is poisoned".into()))?
            .send(job)
            .map_err(|_| HashingError::Failed("no hashing worker is running".into()))?;
        answered.await.map_err(|_| HashingError::Failed("the hashing worker stopped".into()))?
    }
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
    async fn hashes_made_by_the_argon2_crate_itself_verify() {
        use argon2::password_hash::PasswordHasher as _;
        let salt = SaltString::generate(&mut OsRng);
        // Other parameters than ours: a stored hash's own parameters are used.
        let params = Params::new(8 * 1024, 1, 1, None).expect("valid");
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse 1", &salt)
            .expect("hashes")
            .to_string();
        let hasher = Argon2idHasher::new();
        let stored = PasswordHash::from_phc(phc);
        let right = Password::parse_candidate("correct horse 1".into()).expect("valid");
        let wrong = Password::parse_candidate("correct horse 2".into()).expect("valid");
        assert!(hasher.verify(&right, &stored).await.expect("verifies"));
        assert!(!hasher.verify(&wrong, &stored).await.expect("verifies"));
    }

    #[tokio::test]
    async fn a_malformed_hash_is_an_error_not_a_panic() {
        let hasher = Argon2idHasher::new();
        let password = Password::parse_candidate("x".into()).expect("valid");
        let result = hasher.verify(&password, &PasswordHash::from_phc("not a phc string".into())).await;
        assert!(matches!(result, Err(HashingError::Failed(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_caller_that_waits_too_long_for_a_worker_is_told_busy() {
        let hasher = Argon2idHasher::with_limits(HashingLimits { workers: 1, queue_timeout: Duration::from_millis(1) });
        let password = Password::parse_for_account("correct horse 1".into()).expect("valid");
        // One worker and eight hashes at once: the worker is taken for far longer
        // than the millisecond the others may wait.
        let attempts = (0..8).map(|_| hasher.hash(&password));
        let results = futures::future::join_all(attempts).await;
        assert!(results.iter().any(Result::is_ok), "one hash ran: {results:?}");
        assert!(results.iter().any(|result| result == &Err(HashingError::Busy)), "the rest were busy: {results:?}");
        assert!(hasher.hash(&password).await.is_ok(), "the worker is free again afterwards");
    }
}
