//! `rapat events generate`: publishes a deterministic, realistic history of room
//! events (see `rapat_projections::generate`) into the event stream, for analytics
//! replays and load tests. Use a namespace of its own: the rooms are made up.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rapat_projections::export::parse_time;
use rapat_projections::generate::{HistoryConfig, MAX_WINDOW, generate_history, publish_history};

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
    let jetstream = async_nats::jetstream::new(nats);
    rapat_commands::ensure_event_store(&jetstream, &event_store).await.context("opening the event stream")?;

    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} publishing generated room events: {pos} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let subject_prefix = settings.projector().subject_prefix;
    let report = publish_history(&jetstream, &subject_prefix, generate_history(&config), MAX_WINDOW, |published| {
        bar.set_position(published);
    })
    .await
    .context("publishing the history")?;
    bar.finish_and_clear();
    println!(
        "published {} room events of {} rooms over {} days from {} (seed {}) up to stream sequence {} in {:.2} s ({:.0} events/s)",
        report.events,
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
