//! `rapat`: one binary, one subcommand per part. `serve` runs every part in one
//! process; later parts (gateway, sfu, projector) get subcommands of their own so
//! they can be scaled out across machines on a NATS cluster.

use anyhow::Context;
use clap::{Parser, Subcommand};
use rapat_commands::{EventStoreConfig, JetStreamEventStore};
use rapat_domain::account::{Account, EmailClaim};
use rapat_domain::contacts::ContactList;
use rapat_domain::room::Room;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "rapat", version, about = "Event-sourced backend for browser video meetings")]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

/// Settings shared by every subcommand; each can come from the environment.
#[derive(clap::Args)]
struct Settings {
    /// NATS server with JetStream: the event store.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", global = true)]
    nats_url: String,
    /// Prefix of the stream, subjects and buckets, so several deployments can
    /// share one NATS cluster.
    #[arg(long, env = "RAPAT_NAMESPACE", default_value = "rapat", global = true)]
    namespace: String,
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "RAPAT_LOG_FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run every part of rapat in this process. For now: the write side (the
    /// JetStream event store and its stream); the REST gateway, projections and
    /// SFU join it as they are built.
    Serve,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.settings.log_format);
    let result = match cli.command {
        Command::Serve => serve(&cli.settings).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line with the cause chain; an operator needs the reason, not a backtrace.
            eprintln!("rapat: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let config = EventStoreConfig::for_namespace(&settings.namespace);
    let client = rapat_commands::connect(&settings.nats_url).await.context("starting the write side")?;
    // Opening one store per aggregate type creates the stream and snapshot bucket
    // when they are missing, and proves they answer.
    JetStreamEventStore::<Account>::open(client.clone(), config.clone()).await?;
    JetStreamEventStore::<EmailClaim>::open(client.clone(), config.clone()).await?;
    JetStreamEventStore::<Room>::open(client.clone(), config.clone()).await?;
    JetStreamEventStore::<ContactList>::open(client.clone(), config.clone()).await?;
    tracing::info!(
        nats = %settings.nats_url,
        stream = %config.stream,
        subjects = %config.all_subjects(),
        "rapat write side ready; Ctrl-C stops it"
    );
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    tracing::info!("stopping");
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
