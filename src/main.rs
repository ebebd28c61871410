//! `rapat`: one binary, one subcommand per part. `serve` runs every part in one
//! process; `gateway`, `projector` and `sfu` run one part each, so they can be scaled out
//! across machines on a NATS cluster and a shared Postgres.

mod admin;
mod channels;
mod config_file;
mod export;
mod generate;
mod settings;

use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use metrics_exporter_prometheus::PrometheusBuilder;
use rapat_gateway::{Application, Backends, RegistrationManager, ReminderScheduler, Shutdown};
use rapat_projections::{Projection, ProjectionPositions};
use tokio_util::sync::CancellationToken;

use settings::{LogFormat, Settings};

#[derive(Parser)]
#[command(name = "rapat", version, about = "Event-sourced backend for browser video meetings")]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every part in this process: write side, projector, REST/WebSocket
    /// gateway and SFU.
    Serve,
    /// Run the REST gateway alone (projections run elsewhere).
    Gateway,
    /// Run the projections alone, with the registration manager (which finishes or
    /// undoes registrations cut short). A second projector on the same database
    /// stands by and takes over a projection when the active one stops.
    Projector,
    /// Run the SFU alone: media on its UDP socket, signaling and room events
    /// over NATS.
    Sfu,
    /// Rebuild one read model from the start of the stream in fresh tables while
    /// the old ones keep serving, then switch to them atomically. (`replay` is
    /// the same command, by the name SPEC §5 also uses.)
    #[command(alias = "replay")]
    Rebuild {
        /// accounts, sessions, contacts, rooms, audit, analytics, email_claims, invitations, settings, notifications, webhooks or push_subscriptions
        projection: String,
    },
    /// Read the event stream itself.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Administer accounts.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Write the stream (or part of it) as JSON Lines: one stored event per line.
    Export(export::ExportArgs),
    /// Run a deterministic, realistic history of room commands through the command bus (for analytics).
    Generate(generate::GenerateArgs),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Give an account a role; how the first administrator is made.
    Grant {
        /// The account's email address.
        email: String,
        #[arg(long, value_enum, default_value = "admin")]
        role: admin::RoleArg,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("rapat: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let format = match cli.settings.log_format {
        LogFormat::Text => rapat_telemetry::LogFormat::Text,
        LogFormat::Json => rapat_telemetry::LogFormat::Json,
    };
    // Held to the end of main: dropping it flushes the spans still queued.
    let _telemetry = match rapat_telemetry::init(format) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("rapat: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve => run(&cli.settings, Parts { gateway: true, projector: true, sfu: true }).await,
        Command::Gateway => run(&cli.settings, Parts { gateway: true, projector: false, sfu: false }).await,
        Command::Projector => run(&cli.settings, Parts { gateway: false, projector: true, sfu: false }).await,
        Command::Sfu => run(&cli.settings, Parts { gateway: false, projector: false, sfu: true }).await,
        Command::Rebuild { projection } => rebuild(&cli.settings, &projection).await,
        Command::Events { command: EventsCommand::Export(args) } => export::export(&cli.settings, args).await,
        Command::Events { command: EventsCommand::Generate(args) } => generate::generate(&cli.settings, args).await,
        Command::Admin { command: AdminCommand::Grant { email, role } } => {
            admin::grant(&cli.settings, &email, role).await
        }
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

/// The command line, with the optional configuration file's values as defaults.
fn parse_cli() -> anyhow::Result<Cli> {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let Some(path) = config_file::path(&args) else { return Ok(Cli::parse()) };
    let values = config_file::read(&path)?;
    let matches = config_file::parse_with(Cli::command(), args, &values)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

struct Parts {
    gateway: bool,
    projector: bool,
    sfu: bool,
}

async fn run(settings: &Settings, parts: Parts) -> anyhow::Result<()> {
    // Listening from the start: before this, SIGTERM would kill the process outright.
    let mut signals = Signals::listen()?;
    let event_store = settings.event_store();
    let nats = rapat_commands::connect(&settings.nats_url).await.context("connecting to NATS")?;
    if let Some(warning) = rapat_commands::power_loss_warning(&nats) {
        tracing::warn!("{warning}");
    }
    let jetstream = async_nats::jetstream::new(nats.clone());
    rapat_commands::ensure_event_store(&jetstream, &event_store).await.context("opening the event stream")?;
    let db = rapat_projections::connect(&settings.database_url).await.context("opening the read database")?;

    // The gateway stops before the rest: its commands in flight wait for the
    // projector to show their effect, and its closing sockets tell the SFU to drop
    // their peers.
    let gateway_shutdown = Shutdown::new(CancellationToken::new());
    let stop_rest = CancellationToken::new();
    let mut gateway_task = tokio::task::JoinSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    if parts.projector {
        let (pool, jetstream, config, stop) = (db.clone(), jetstream.clone(), settings.projector(), stop_rest.clone());
        tasks
            .spawn(async move { rapat_projections::run_all(pool, jetstream, config, stop).await.context("projector") });
        // Next to the projector that keeps its read model of pending claims.
        let manager = RegistrationManager::open(nats.clone(), event_store.clone(), db.clone(), settings.registration())
            .await
            .context("opening the event store for the registration manager")?;
        let stop = stop_rest.clone();
        tasks.spawn(async move {
            manager.run(stop).await;
            Ok(())
        });
        // Next to the projector that keeps the reminder timers.
        let scheduler = ReminderScheduler::open(nats.clone(), event_store.clone(), db.clone(), settings.reminders())
            .await
            .context("opening the event store for the reminder scheduler")?;
        let stop = stop_rest.clone();
        tasks.spawn(async move {
            scheduler.run(stop).await;
            Ok(())
        });
        // Next to the projector that lists the recordings it expires.
        let store = std::sync::Arc::new(rapat_recording::LocalDirStore::new(settings.recordings_dir.clone()));
        let retention = rapat_gateway::RecordingRetention::open(
            nats.clone(),
            event_store.clone(),
            db.clone(),
            store,
            settings.recording_retention(),
        )
        .await
        .context("opening the event store for recording retention")?;
        let stop = stop_rest.clone();
        tasks.spawn(async move {
            retention.run(stop).await;
            Ok(())
        });
        // Next to the projector that fills their outboxes.
        channels::spawn(settings, &nats, &event_store, &db, &mut tasks, &stop_rest).await?;
    }
    // Kept alive until the end of `run`: dropping it stops the media threads.
    let mut _sfu = None;
    if parts.sfu {
        let admission = rapat_sfu::nats::RoomEventAdmission::open(nats.clone(), event_store.clone())
            .await
            .context("opening the event stream for the SFU")?;
        let rosters = admission.rosters();
        let (sfu, outgoing) = rapat_sfu::Sfu::start(settings.sfu(), std::sync::Arc::new(admission))
            .with_context(|| format!("binding the SFU's UDP socket {}", settings.sfu_udp_addr))?;
        tracing::info!(address = %sfu.local_addr(), announced = %sfu.announced_addr(), "SFU media on udp://{}", sfu.local_addr());
        let serve = rapat_sfu::nats::serve(
            nats.clone(),
            event_store.clone(),
            rosters,
            sfu.handle(),
            outgoing,
            stop_rest.clone(),
        );
        tasks.spawn(async move { serve.await.context("SFU signaling") });
        _sfu = Some(sfu);
    }
    if parts.gateway {
        let positions = ProjectionPositions::start(db.clone());
        let metrics = PrometheusBuilder::new().install_recorder().context("installing the metrics recorder")?;
        let shutdown = gateway_shutdown.clone();
        let backends = Backends { nats, event_store, db, positions, metrics: Some(metrics), shutdown };
        let application = Application::build(settings.gateway()?, backends).await.context("starting the gateway")?;
        tracing::info!(address = %application.address(), "REST API listening on http://{}/api/v1", application.address());
        gateway_task.spawn(async move { application.run_until_stopped().await.context("gateway") });
    }
    tracing::info!(stream = %settings.namespace.events_stream(), "rapat running; SIGTERM or Ctrl-C stops it");

    let (outcome, drain) = tokio::select! {
        signal = signals.next() => {
            match signal {
                Some(name) => tracing::info!("{name}: shutting down"),
                None => tracing::warn!("signals can no longer be received: shutting down"),
            }
            (Ok(()), true)
        }
        Some(finished) = tasks.join_next() => (part_outcome(finished), false),
        Some(finished) = gateway_task.join_next() => (part_outcome(finished), false),
    };
    let grace = settings.shutdown_grace();
    let stopping = async {
        if drain && parts.gateway {
            gateway_shutdown.begin_draining();
            tracing::info!(
                "draining for {:?}: /readyz answers 503 and new requests are refused",
                settings.shutdown_drain()
            );
            tokio::time::sleep(settings.shutdown_drain()).await;
        }
        tracing::info!("stopping: closing the listener and every WebSocket (1012)");
        gateway_shutdown.stop();
        while let Some(finished) = gateway_task.join_next().await {
            log_late_failure(part_outcome(finished));
        }
        stop_rest.cancel();
        while let Some(finished) = tasks.join_next().await {
            log_late_failure(part_outcome(finished));
        }
    };
    tokio::select! {
        () = stopping => {}
        () = tokio::time::sleep(grace) => {
            // An explicit exit: returning would wait for whatever still runs.
            tracing::error!("the shutdown grace period ({grace:?}) ran out; exiting with work unfinished");
            std::process::exit(1);
        }
        Some(name) = signals.next() => {
            tracing::warn!("a second signal ({name}): exiting now, with work unfinished");
            std::process::exit(1);
        }
    }
    tracing::info!("stopped");
    outcome
}

/// SIGTERM (what service managers and orchestrators send) and SIGINT (Ctrl-C)
/// both start a graceful shutdown; a second one cuts it short.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
        })
    }

    /// The next signal's name; `None` only if signals can no longer be received.
    async fn next(&mut self) -> Option<&'static str> {
        tokio::select! {
            received = self.terminate.recv() => received.map(|()| "SIGTERM"),
            received = self.interrupt.recv() => received.map(|()| "SIGINT"),
        }
    }
}

fn part_outcome(finished: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match finished {
        Ok(result) => result,
        Err(panic) => Err(anyhow::anyhow!("a part of rapat crashed: {panic}")),
    }
}

/// A part that fails while stopping does not change the exit status of a
/// shutdown that was asked for; it is logged.
fn log_late_failure(outcome: anyhow::Result<()>) {
    if let Err(error) = outcome {
        tracing::warn!("while stopping: {error:#}");
    }
}

async fn rebuild(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let projection = Projection::parse(name).with_context(|| {
        let known: Vec<&str> = Projection::ALL.iter().map(|p| p.name()).collect();
        format!("unknown projection {name:?}; one of: {}", known.join(", "))
    })?;
    let nats = rapat_commands::connect(&settings.nats_url).await.context("connecting to NATS")?;
    let jetstream = async_nats::jetstream::new(nats);
    let db = rapat_projections::connect(&settings.database_url).await.context("opening the read database")?;

    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} stream sequence ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("rebuilding {}", projection.name()));
    let started = Instant::now();
    let report = rapat_projections::rebuild(&db, &jetstream, &settings.projector(), projection, |progress| {
        bar.set_length(progress.target_sequence);
        bar.set_position(progress.applied_sequence.min(progress.target_sequence));
    })
    .await
    .context("rebuilding")?;
    bar.finish_and_clear();
    println!(
        "rebuilt {}: {} events, switched at stream sequence {} in {:.2} s ({:.0} events/s)",
        projection.name(),
        report.events,
        report.switched_at_sequence,
        started.elapsed().as_secs_f64(),
        report.events_per_second
    );
    Ok(())
}
