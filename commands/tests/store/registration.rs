//! Registering an account through `rapat_commands::registration`: the claim, the
//! account and the confirmation, against a real event store.

use rapat_commands::registration::{self, Registered, Registration, RegistrationCommands, RegistrationError};
use rapat_commands::{CommandBus, CommandError, CommandMetadata};
use rapat_domain::account::{Account, AccountCommand, AccountError, Email, EmailClaim, EmailClaimError, PersonName};
use rapat_domain::credentials::Password;
use rapat_domain::ids::UserId;
use uuid::Uuid;

use crate::support::{TestStore, test_services};

struct Buses {
    accounts: CommandBus<Account>,
    emails: CommandBus<EmailClaim>,
}

impl Buses {
    async fn open(store: &TestStore) -> Self {
        Self {
            accounts: CommandBus::new(store.open().await, test_services()),
            emails: CommandBus::new(store.open().await, ()),
        }
    }

    async fn register(
        &self,
        account: UserId,
        address: &str,
        commands: RegistrationCommands,
    ) -> Result<Registered, RegistrationError> {
        registration::register(&self.accounts, &self.emails, new_account(account, address), commands).await
    }

    /// The claim of `address` as stored: its account and whether it is confirmed.
    async fn claim_of(&self, address: &str) -> (Option<UserId>, bool) {
        let loaded = self.emails.store().load(&email(address).claim_id().to_string()).await.expect("the claim loads");
        (loaded.state.aggregate.account(), loaded.state.aggregate.is_confirmed())
    }

    /// How many commits the claim of `address` and `account` have stored.
    async fn commits(&self, address: &str, account: UserId) -> (usize, usize) {
        let claim =
            self.emails.store().read_events(&email(address).claim_id().to_string()).await.expect("the claim reads");
        let account = self.accounts.store().read_events(&account.to_string()).await.expect("the account reads");
        (claim.len(), account.len())
    }
}

fn email(address: &str) -> Email {
    Email::parse(address.to_owned()).expect("valid email")
}

fn new_account(account: UserId, address: &str) -> Registration {
    Registration {
        account,
        email: email(address),
        password: Password::parse_for_account("correct horse 1".to_owned()).expect("valid password"),
        first_name: PersonName::parse("Ana".to_owned()).expect("valid name"),
        last_name: PersonName::parse("Putri".to_owned()).expect("valid name"),
        verification: None,
    }
}

/// Commands with fresh ids, as a request without an idempotency key sends.
fn fresh(account: UserId) -> RegistrationCommands {
    let by = || CommandMetadata::by(account.to_string());
    RegistrationCommands { claim: by(), register: by(), confirm: by() }
}

/// Commands with ids a retried request sends again.
fn keyed(account: UserId) -> RegistrationCommands {
    let by = || CommandMetadata::by(account.to_string()).with_client_key(Uuid::new_v4());
    RegistrationCommands { claim: by(), register: by(), confirm: by() }
}

#[tokio::test]
async fn registering_claims_the_address_registers_the_account_and_confirms_the_claim() {
    let store = TestStore::new().await;
    let buses = Buses::open(&store).await;
    let ana = UserId::new_random();

    let registered = buses.register(ana, "ana@example.com", fresh(ana)).await.expect("registered");

    assert_eq!(registered.account, ana);
    assert!(registered.claim_confirmed);
    let account = buses.accounts.store().load(&ana.to_string()).await.expect("the account loads");
    assert!(account.state.aggregate.is_registered());
    assert_eq!(account.state.aggregate.email(), Some(&email("ana@example.com")));
    assert_eq!(registered.account_sequence, account.state.subject_sequence);
    assert_eq!(buses.claim_of("ana@example.com").await, (Some(ana), true));
}

#[tokio::test]
async fn a_retried_registration_with_the_same_command_ids_stores_nothing_twice() {
    let store = TestStore::new().await;
    let buses = Buses::open(&store).await;
    let ana = UserId::new_random();
    let commands = keyed(ana);

    let first = buses.register(ana, "ana@example.com", commands.clone()).await.expect("registered");
    let stored = buses.commits("ana@example.com", ana).await;
    assert_eq!(stored, (2, 1), "a claim and its confirmation, and the registration");
    // A second process, as a retry may reach another gateway.
    let other = Buses::open(&store).await;
    let again = other.register(ana, "ana@example.com", commands).await.expect("the retry succeeds");

    assert_eq!(again, first);
    assert_eq!(buses.commits("ana@example.com", ana).await, stored);
}

#[tokio::test]
async fn a_taken_address_refuses_the_claim_and_registers_nothing() {
    let store = TestStore::new().await;
    let buses = Buses::open(&store).await;
    let (ana, budi) = (UserId::new_random(), UserId::new_random());
    buses.register(ana, "ana@example.com", fresh(ana)).await.expect("registered");

    let refused = buses.register(budi, "ana@example.com", fresh(budi)).await.expect_err("the address is taken");

    assert!(
        matches!(refused, RegistrationError::Claim(CommandError::Rejected(EmailClaimError::EmailTaken))),
        "{refused:?}"
    );
    assert_eq!(buses.commits("ana@example.com", budi).await.1, 0, "budi's account was never written");
    assert_eq!(buses.claim_of("ana@example.com").await, (Some(ana), true));
}

#[tokio::test]
async fn a_refused_account_step_frees_the_address_at_once() {
    let store = TestStore::new().await;
    let buses = Buses::open(&store).await;
    let (ana, budi) = (UserId::new_random(), UserId::new_random());
    // What the registration manager leaves of an account it gave up on.
    let abandon = CommandMetadata::system();
    buses.accounts.execute(&ana.to_string(), AccountCommand::AbandonRegistration, abandon).await.expect("abandoned");

    let refused = buses.register(ana, "ana@example.com", fresh(ana)).await.expect_err("the account was abandoned");

    assert!(
        matches!(refused, RegistrationError::Account(CommandError::Rejected(AccountError::RegistrationAbandoned))),
        "{refused:?}"
    );
    assert_eq!(buses.claim_of("ana@example.com").await, (None, false), "the claim is released");
    buses.register(budi, "ana@example.com", fresh(budi)).await.expect("the address is free for another account");
    assert_eq!(buses.claim_of("ana@example.com").await, (Some(budi), true));
}
