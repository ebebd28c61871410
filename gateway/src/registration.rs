//! The registration manager: finishes or undoes registrations that were cut short.
//!
//! Registering is three commands (claim the address, register the account,
//! confirm the claim: `rapat_commands::registration`), so a process that dies, or
//! a store that fails, between them leaves the claim pending and the address
//! taken. The manager reads the pending claims from the `email_claims` read model
//! and, once a claim is older than a grace period, settles it with
//! [`rapat_commands::registration::settle`] (abandon the account, then confirm or
//! release the claim; see there why in that order and why repeats are harmless).
//! One manager is active per database (a Postgres advisory lock); others stand by.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use rapat_commands::registration::{PendingClaim, SettleError, Settled, settle};
use rapat_commands::{CommandBus, EventStoreConfig, JetStreamEventStore, StoreError};
use rapat_domain::account::{Account, EmailClaim};
use rapat_domain::credentials::{Password, PasswordHash};
use rapat_domain::services::{DomainServices, HashingError, PasswordHasher};
use rapat_projections::projector::AdvisoryLock;
use rapat_projections::queries::QueryError;
use rapat_projections::queries::email_claims::{self, ClaimRow};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// The advisory lock that makes one manager active per database.
const LOCK_NAME: &str = "rapat.registrations";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegistrationConfig {
    /// How old a pending claim must be before it is settled. Longer than a
    /// registration takes when all is well (password hashing may wait for a
    /// worker, publishing for NATS), since a registration still running when it
    /// runs out is undone and answered 503.
    pub grace: Duration,
    /// How often the pending claims are looked at, and how often a standby tries
    /// to take over.
    pub poll_every: Duration,
    /// Most claims settled in one pass.
    pub batch: u32,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self { grace: Duration::from_secs(15), poll_every: Duration::from_secs(1), batch: 100 }
    }
}

/// A pending claim as the read model shows it.
fn pending_claim(row: &ClaimRow) -> PendingClaim {
    PendingClaim { claim_id: row.claim_id, account: row.account_id, claim_version: row.claim_version }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Settle(#[from] SettleError),
}

/// Settles the registrations that were cut short; see the module's documentation.
pub struct RegistrationManager {
    accounts: CommandBus<Account>,
    emails: CommandBus<EmailClaim>,
    db: PgPool,
    config: RegistrationConfig,
}

impl RegistrationManager {
    pub async fn open(
        nats: async_nats::Client,
        event_store: EventStoreConfig,
        db: PgPool,
        config: RegistrationConfig,
    ) -> Result<Self, StoreError> {
        // Abandoning a registration hashes no password; this process may have no
        // hashing workers at all (`rapat projector`).
        let services = DomainServices::new(Arc::new(NoPasswords));
        let accounts = CommandBus::new(JetStreamEventStore::open(nats.clone(), event_store.clone()).await?, services);
        let emails = CommandBus::new(JetStreamEventStore::open(nats, event_store).await?, ());
        Ok(Self { accounts, emails, db, config })
    }

    /// Runs until `shutdown`: as the active manager while it holds the lock, as a
    /// standby otherwise. Outages are logged and retried.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut standing_by = false;
        loop {
            match AdvisoryLock::try_acquire(&self.db, LOCK_NAME).await {
                Ok(Some(lock)) => {
                    tracing::info!("active registration manager");
                    standing_by = false;
                    self.run_locked(lock, &shutdown).await;
                }
                Ok(None) if !standing_by => {
                    tracing::info!("another registration manager is active; standing by");
                    standing_by = true;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot reach the read database for the registration manager's lock")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.poll_every) => {}
            }
        }
    }

    async fn run_locked(&self, mut lock: AdvisoryLock, shutdown: &CancellationToken) {
        loop {
            match self.sweep().await {
                Ok(0) => {}
                Ok(settled) => tracing::info!(settled, "settled registrations that were cut short"),
                Err(error) => tracing::warn!(%error, "settling registrations failed; trying again"),
            }
            tokio::select! {
                () = shutdown.cancelled() => {
                    lock.release().await;
                    return;
                }
                () = tokio::time::sleep(self.config.poll_every) => {}
            }
            if !lock.still_held().await {
                tracing::warn!("lost the registration manager's lock; standing by");
                return;
            }
        }
    }

    /// One pass: settles the claims pending for longer than the grace period and
    /// returns how many. Stops at an outage (the next pass goes on); a claim that
    /// cannot be settled for another reason is logged and skipped.
    pub async fn sweep(&self) -> Result<usize, SweepError> {
        let grace = chrono::Duration::from_std(self.config.grace).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now() - grace;
        let pending = email_claims::pending_before(&self.db, cutoff, self.config.batch).await?;
        let mut settled = 0;
        for row in &pending {
            match settle(&self.accounts, &self.emails, pending_claim(row)).await {
                Ok(Settled::Already) => {
                    tracing::debug!(claim = %row.claim_id, "registration settled already");
                }
                Ok(outcome) => {
                    settled += 1;
                    let outcome = if outcome == Settled::Confirmed { "confirmed" } else { "released" };
                    metrics::counter!("rapat_registrations_settled_total", "outcome" => outcome).increment(1);
                    tracing::info!(claim = %row.claim_id, account = %row.account_id, outcome, "settled a registration");
                }
                Err(error) if error.is_unavailable() => return Err(error.into()),
                Err(error) => {
                    tracing::error!(claim = %row.claim_id, account = %row.account_id, %error, "cannot settle a registration");
                }
            }
        }
        Ok(settled)
    }
}

/// The manager's account commands hash nothing (nor do the reminder scheduler's
/// room commands); a command that would is refused.
pub(crate) struct NoPasswords;

#[async_trait]
impl PasswordHasher for NoPasswords {
    async fn hash(&self, _: &Password) -> Result<PasswordHash, HashingError> {
        Err(HashingError::Failed("the registration manager hashes no passwords".into()))
    }

    async fn verify(&self, _: &Password, _: &PasswordHash) -> Result<bool, HashingError> {
        Err(HashingError::Failed("the registration manager checks no passwords".into()))
    }
}
