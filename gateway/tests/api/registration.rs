//! Registrations cut short between their three commands (claim the address,
//! register the account, confirm the claim) are finished or undone by the
//! registration manager. Each test runs the commands a registration would have
//! run up to the point where its process "died", straight through the command
//! bus, then lets the manager settle what was left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rapat_commands::{Argon2idHasher, CommandBus, CommandError, CommandMetadata, HashingLimits, JetStreamEventStore};
use rapat_domain::account::{Account, AccountCommand, AccountError, Email, EmailClaim, EmailClaimCommand, PersonName};
use rapat_domain::credentials::Password;
use rapat_domain::ids::UserId;
use rapat_domain::services::DomainServices;
use rapat_gateway::{PendingClaim, RegistrationConfig, RegistrationManager, Settled, settle};
use rapat_projections::queries::email_claims::{self, ClaimState};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::helpers::{TestApp, nats_url, spawn_app};

const PASSWORD: &str = "correct horse 1";

/// The write side as a second process would have it: buses of their own, so
/// their commands race this gateway's through the store, not a local lock.
struct WriteSide {
    accounts: CommandBus<Account>,
    claims: CommandBus<EmailClaim>,
}

impl WriteSide {
    async fn open(app: &TestApp) -> Self {
        let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
        let limits = HashingLimits { workers: 2, queue_timeout: Duration::from_secs(30) };
        let services = DomainServices::new(Arc::new(Argon2idHasher::with_limits(limits)));
        let accounts = JetStreamEventStore::open(nats.clone(), app.event_store.clone()).await.expect("account store");
        let claims = JetStreamEventStore::open(nats, app.event_store.clone()).await.expect("claim store");
        Self { accounts: CommandBus::new(accounts, services), claims: CommandBus::new(claims, ()) }
    }

    /// Step 1 of a registration. Returns the claim as the manager would see it.
    async fn claim(&self, address: &str, account: UserId) -> PendingClaim {
        let email = email(address);
        let claim_id = email.claim_id();
        let command = EmailClaimCommand::Claim { email, account, now: Utc::now() };
        let outcome =
            self.claims.execute(&claim_id.to_string(), command, CommandMetadata::system()).await.expect("claimed");
        PendingClaim { claim_id, account, claim_version: outcome.version }
    }

    /// Step 2 of a registration.
    async fn register(&self, address: &str, account: UserId) -> Result<(), CommandError<AccountError>> {
        let command = AccountCommand::Register {
            email: email(address),
            password: Password::parse_for_account(PASSWORD.to_owned()).expect("valid password"),
            first_name: PersonName::parse("Cut".to_owned()).expect("valid name"),
            last_name: PersonName::parse("Short".to_owned()).expect("valid name"),
            verification: None,
        };
        self.accounts.execute(&account.to_string(), command, CommandMetadata::system()).await.map(|_| ())
    }
}

fn email(address: &str) -> Email {
    Email::parse(address.to_owned()).expect("valid email")
}

/// Starts a registration manager with a short grace; it stops when the guard drops.
async fn start_manager(app: &TestApp) -> DropGuard {
    let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
    let config =
        RegistrationConfig { grace: Duration::from_secs(1), poll_every: Duration::from_millis(100), batch: 100 };
    let manager =
        RegistrationManager::open(nats, app.event_store.clone(), app.db.clone(), config).await.expect("manager opens");
    let stop = CancellationToken::new();
    tokio::spawn(manager.run(stop.clone()));
    stop.drop_guard()
}

/// Waits until the claims read model shows `address` in `state`; returns how long
/// that took.
async fn wait_for_claim(app: &TestApp, address: &str, state: ClaimState) -> Duration {
    let started = Instant::now();
    let claim_id = email(address).claim_id();
    loop {
        let row = email_claims::by_id(&app.db, claim_id).await.expect("claims read model");
        if row.as_ref().is_some_and(|row| row.state == state) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{address} is not {state:?} after 20 s: {row:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Events stored for one aggregate, read from the stream by a store with an empty cache.
async fn versions(app: &TestApp, claim: PendingClaim) -> (u64, u64) {
    let fresh = WriteSide::open(app).await;
    let claim_version =
        fresh.claims.store().load(&claim.claim_id.to_string()).await.expect("claim loads").state.version;
    let account_version =
        fresh.accounts.store().load(&claim.account.to_string()).await.expect("account loads").state.version;
    (claim_version, account_version)
}

#[tokio::test]
async fn a_claim_whose_account_was_never_registered_is_released_and_the_email_registers_again() {
    let app = spawn_app().await;
    let write = WriteSide::open(&app).await;
    let address = "ida.cut@example.com";
    let abandoned = UserId::new_random();
    // The process died right after claiming the address.
    write.claim(address, abandoned).await;
    app.register(address, PASSWORD, "Ida", "Again").await.expect_error(409, "email_taken");

    let _manager = start_manager(&app).await;
    let took = wait_for_claim(&app, address, ClaimState::Released).await;
    eprintln!("released {took:?} after the manager started (grace 1 s)");
    assert!(took < Duration::from_secs(10), "released only after {took:?}");

    app.register(address, PASSWORD, "Ida", "Again").await.expect(201);
    app.login(address, PASSWORD).await.expect(200);
    // The first registration, landing now, is refused: one account per address.
    let late = write.register(address, abandoned).await;
    assert!(matches!(late, Err(CommandError::Rejected(AccountError::RegistrationAbandoned))), "{late:?}");
}

#[tokio::test]
async fn a_registered_account_whose_claim_was_never_confirmed_is_confirmed_and_logs_in() {
    let app = spawn_app().await;
    let write = WriteSide::open(&app).await;
    let address = "joko.cut@example.com";
    let account = UserId::new_random();
    // The process died after registering the account, before confirming the claim.
    write.claim(address, account).await;
    write.register(address, account).await.expect("registered");

    let _manager = start_manager(&app).await;
    let took = wait_for_claim(&app, address, ClaimState::Confirmed).await;
    assert!(took < Duration::from_secs(10), "confirmed only after {took:?}");

    let login = app.login(address, PASSWORD).await;
    login.expect(200);
    assert_eq!(login.data()["user"]["id"], serde_json::json!(account.to_string()));
    app.register(address, PASSWORD, "Joko", "Again").await.expect_error(409, "email_taken");
}

/// The original request is merely slow: its account registration races the
/// manager's settling. Whichever lands first, the account and the claim agree:
/// registered and confirmed, or abandoned (the late registration refused) and
/// released. Never a released claim with a registered account.
#[tokio::test]
async fn a_registration_racing_the_manager_ends_registered_and_confirmed_or_refused_and_released() {
    let app = spawn_app().await;
    let request = WriteSide::open(&app).await;
    let manager = WriteSide::open(&app).await;
    let mut outcomes = Vec::new();
    for round in 0..6u64 {
        let address = format!("race{round}@example.com");
        let account = UserId::new_random();
        let pending = request.claim(&address, account).await;
        // Spread the manager's start over the registration's hashing, so that
        // both orders happen.
        let late_settle = async {
            tokio::time::sleep(Duration::from_millis(round * 150)).await;
            settle(&manager.accounts, &manager.claims, pending).await
        };
        let (registered, settled) = tokio::join!(request.register(&address, account), late_settle);
        let settled = settled.expect("settles");
        let fresh = WriteSide::open(&app).await;
        let stored =
            fresh.claims.store().load(&pending.claim_id.to_string()).await.expect("claim loads").state.aggregate;
        match (&registered, settled) {
            (Ok(()), Settled::Confirmed) => {
                assert_eq!((stored.account(), stored.is_confirmed()), (Some(account), true), "round {round}");
            }
            (Err(CommandError::Rejected(AccountError::RegistrationAbandoned)), Settled::Released) => {
                assert_eq!(stored.account(), None, "round {round}: released");
                app.register(&address, PASSWORD, "Next", "Owner").await.expect(201);
            }
            other => panic!("round {round}: the account and the claim disagree: {other:?}"),
        }
        outcomes.push(settled);
    }
    eprintln!("outcomes: {outcomes:?}");
}

/// Two managers (or a manager and a redelivery) settling the same claims at
/// once store each decision once.
#[tokio::test]
async fn two_managers_settling_at_once_store_each_decision_once() {
    let app = spawn_app().await;
    let write = WriteSide::open(&app).await;
    let released = write.claim("lina.cut@example.com", UserId::new_random()).await;
    let registered_account = UserId::new_random();
    let confirmed = write.claim("maya.cut@example.com", registered_account).await;
    write.register("maya.cut@example.com", registered_account).await.expect("registered");
    wait_for_claim(&app, "maya.cut@example.com", ClaimState::Pending).await;
    wait_for_claim(&app, "lina.cut@example.com", ClaimState::Pending).await;

    let open = || async {
        let nats = rapat_commands::connect(&nats_url()).await.expect("NATS");
        let config = RegistrationConfig { grace: Duration::ZERO, ..RegistrationConfig::default() };
        RegistrationManager::open(nats, app.event_store.clone(), app.db.clone(), config).await.expect("manager opens")
    };
    let (first, second) = (open().await, open().await);
    let (a, b) = tokio::join!(first.sweep(), second.sweep());
    let (a, b) = (a.expect("sweeps"), b.expect("sweeps"));
    assert_eq!(a + b, 2, "each claim settled once");
    // Again, before and after the read model shows it: nothing more is stored.
    first.sweep().await.expect("sweeps");
    wait_for_claim(&app, "lina.cut@example.com", ClaimState::Released).await;
    wait_for_claim(&app, "maya.cut@example.com", ClaimState::Confirmed).await;
    assert_eq!(second.sweep().await.expect("sweeps"), 0);

    // Claimed + released; abandoned.
    assert_eq!(versions(&app, released).await, (2, 1));
    // Claimed + confirmed; registered.
    assert_eq!(versions(&app, confirmed).await, (2, 1));
}

/// A registration whose account step fails outright (here: every hashing worker
/// busy) undoes itself before answering, so trying again needs no grace period
/// and no manager.
#[tokio::test]
async fn a_registration_refused_for_busy_hashing_frees_its_address_at_once() {
    let app = crate::helpers::spawn_app_with(|config| {
        config.hashing = rapat_gateway::HashingLimits { workers: 1, queue_timeout: Duration::from_millis(1) };
    })
    .await;
    // A second gateway with ordinary hashing, for the retry.
    let other = app.second_gateway().await;
    let mut attempt = 0;
    let address = loop {
        attempt += 1;
        assert!(attempt <= 10, "hashing never turned out busy");
        let address = format!("nia{attempt}@example.com");
        // Logins for unknown addresses keep the one hashing worker taken.
        let logins: Vec<_> = (0..8).map(|_| app.login("nobody@example.com", PASSWORD)).collect();
        let (_, registered) =
            tokio::join!(futures::future::join_all(logins), app.register(&address, PASSWORD, "Nia", "Busy"));
        if registered.status == 503 {
            registered.expect_error(503, "busy");
            break address;
        }
    };
    let body = serde_json::json!({ "email": address, "password": PASSWORD, "firstName": "Nia", "lastName": "Again" });
    let retried = app.http.post(format!("{other}/api/v1/auth/register")).json(&body).send().await.expect("answers");
    assert_eq!(retried.status(), 201, "{:?}", retried.text().await);
}

/// A registration whose account the manager abandoned while it ran (a request
/// slower than the grace period) is refused for good, and its answer does not
/// say "stored": the claim it stored and the release do not count as the
/// registration. (It used to answer 503 `service_unavailable`, which the
/// request's deadline layer then turned into 202 `stored_not_visible`, because
/// the claim had been stored: an account acknowledged that never existed.)
#[tokio::test]
async fn a_registration_abandoned_while_it_ran_is_refused_and_does_not_read_as_stored() {
    use rapat_commands::deadline::{self, RequestBudget, WriteState};
    use rapat_commands::registration::{Registration, RegistrationCommands, RegistrationError, register};

    let app = spawn_app().await;
    let write = WriteSide::open(&app).await;
    let account = UserId::new_random();
    // The manager got there first: the account will never be registered.
    let abandon = write.accounts.execute(&account.to_string(), AccountCommand::AbandonRegistration, system()).await;
    abandon.expect("abandoned");

    let registration = Registration {
        account,
        email: email("slow@example.com"),
        password: Password::parse_for_account(PASSWORD.to_owned()).expect("valid password"),
        first_name: PersonName::parse("Slow".to_owned()).expect("valid name"),
        last_name: PersonName::parse("Poke".to_owned()).expect("valid name"),
        verification: None,
    };
    let commands = RegistrationCommands { claim: system(), register: system(), confirm: system() };
    let budget = RequestBudget::new(Duration::from_secs(10));
    let registered =
        deadline::scope(Arc::clone(&budget), register(&write.accounts, &write.claims, registration, commands)).await;
    let Err(RegistrationError::Account(error)) = registered else { panic!("refused: {registered:?}") };
    assert!(matches!(error, CommandError::Rejected(AccountError::RegistrationAbandoned)), "{error:?}");
    assert_eq!(budget.last_write(), WriteState::None, "the request's last write must not read as stored");

    let answer = rapat_gateway::ApiError::from(error);
    assert_eq!((answer.status.as_u16(), answer.code), (409, "registration_abandoned"));
    // The address is free again.
    wait_for_claim(&app, "slow@example.com", ClaimState::Released).await;
}

fn system() -> CommandMetadata {
    CommandMetadata::system()
}
