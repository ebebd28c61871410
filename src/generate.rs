//! `rapat events generate`: runs a deterministic, realistic history of room
//! commands (see `rapat_commands::generate`) through the command bus, for
//! analytics replays and load tests. Use a namespace of its own: the rooms are
//! made up, and generating the same history twice into one namespace is refused.

use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rapat_commands::generate::{HistoryConfig, MAX_WINDOW, plan_history, run_plan};
use rapat_commands::{Argon2idHasher, CommandBus, JetStreamEventStore};
use rapat_domain::room::Room;
use rapat_domain::services::DomainServices;
use rapat_projections::export::parse_time;

use crate::settings::Settings;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// How many rooms (about 18 events per room and day).
    #[arg(long, default_value_t = 100)]
    rooms: u32,
    /// How many UTC days the history spans.
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// The same seed (with the same rooms, days and start) gives the same events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First instant of the history (RFC 3339); defaults to midnight UTC `days` days ago.
    #[arg(long)]
    start: Option<String>,
}

pub async fn generate(settings: &Settings, args: GenerateArgs) -> anyhow::Result<()> {
    let config = match &args.start {
        Some(start) => HistoryConfig { seed: args.seed, rooms: args.rooms, days: args.days, start: parse_time(start)? },
        None => HistoryConfig::ending_today(args.seed, args.rooms, args.days),
    };
    let event_store = settings.event_store();
    let nats = rapat_commands::connect(&settings.nats_url).await.context("connecting to NATS")?;
    // Opening the store creates the stream (and snapshot bucket) when missing.
    let store = JetStreamEventStore::<Room>::open(nats, event_store).await.context("opening the event store")?;
    // The generated rooms have no passwords: nothing is hashed.
    let bus = Arc::new(CommandBus::new(store, DomainServices::new(Arc::new(Argon2idHasher::new()))));

    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} running generated room commands: {pos} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let report = run_plan(bus, plan_history(&config), MAX_WINDOW, |done| bar.set_position(done))
        .await
        .context("running the history's commands")?;
    bar.finish_and_clear();
    println!(
        "stored {} room events from {} commands of {} rooms over {} days from {} (seed {}) up to stream sequence {} in {:.2} s ({:.0} events/s)",
        report.events,
        report.commands,
        config.rooms,
        config.days,
        config.start.to_rfc3339(),
        config.seed,
        report.last_sequence,
        report.elapsed.as_secs_f64(),
        report.events_per_second()
    );
    Ok(())
}
