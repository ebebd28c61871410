//! `rapat admin grant`: how the first administrator is made. There is no HTTP
//! endpoint for it on purpose: whoever can run the binary against the deployment's
//! NATS already holds its keys.

use std::sync::Arc;

use anyhow::Context;
use rapat_commands::{Argon2idHasher, CommandBus, CommandError, CommandMetadata, JetStreamEventStore};
use rapat_domain::account::{Account, AccountCommand, AccountError, Email, EmailClaim, Role};
use rapat_domain::services::DomainServices;

use crate::settings::Settings;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Admin,
    Member,
}

impl RoleArg {
    fn role(self) -> Role {
        match self {
            Self::Admin => Role::Admin,
            Self::Member => Role::Member,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

/// Gives the account registered with `email` the role `role`, as the system (no
/// acting user), through the same command bus the gateway uses.
pub async fn grant(settings: &Settings, email: &str, role: RoleArg) -> anyhow::Result<()> {
    let email = Email::parse(email.to_owned()).map_err(|error| anyhow::anyhow!("{email:?}: {error}"))?;
    let nats = rapat_commands::connect(&settings.nats_url).await.context("connecting to NATS")?;
    let config = settings.event_store();

    // The email claim is the source of truth for which account owns an address; the
    // users read model may lag behind or be rebuilding.
    let claims = JetStreamEventStore::<EmailClaim>::open(nats.clone(), config.clone())
        .await
        .context("opening the event store")?;
    let claim = claims.load(&email.claim_id().to_string()).await.context("looking the email up")?;
    let account =
        claim.state.aggregate.account().with_context(|| format!("no account is registered with {}", email.as_str()))?;

    let store = JetStreamEventStore::<Account>::open(nats, config).await.context("opening the event store")?;
    let bus = CommandBus::new(store, DomainServices::new(Arc::new(Argon2idHasher::new())));
    let command = AccountCommand::GrantRole { role: role.role() };
    let outcome = match bus.execute(&account.to_string(), command, CommandMetadata::system()).await {
        Ok(outcome) => outcome,
        Err(CommandError::Rejected(AccountError::NotFound)) => {
            anyhow::bail!("no account is registered with {} (its registration never completed)", email.as_str())
        }
        Err(error) => return Err(error).context("granting the role"),
    };
    if outcome.events.is_empty() {
        println!("{} (account {account}) already has the role {}; nothing recorded", email.as_str(), role.name());
    } else {
        println!(
            "granted the role {} to {} (account {account}, stream sequence {}); \
             access tokens issued from now on carry it: log in again",
            role.name(),
            email.as_str(),
            outcome.stream_sequence
        );
    }
    Ok(())
}
