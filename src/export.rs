//! `rapat events export`: the stream, or part of it, as JSON Lines for analytics.
//! The work is `rapat_projections::export::export_jsonl`; this module handles the
//! command line, the output file, `--resume` and the progress bar.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rapat_projections::export::{ExportFilter, export_jsonl, parse_time, resume_point};

use crate::settings::Settings;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// First stream sequence to export.
    #[arg(long)]
    from_sequence: Option<u64>,
    /// Only events stored at or after this RFC 3339 time (e.g. 2025-01-31T00:00:00Z).
    #[arg(long)]
    since: Option<String>,
    /// Only this aggregate type's events: room, account, contacts, email or session.
    #[arg(long)]
    aggregate_type: Option<String>,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Continue an earlier export into --output: append what follows its last line.
    #[arg(long, requires = "output")]
    resume: bool,
    /// Export secrets (password and refresh-token hashes) as stored instead of
    /// "[redacted]". Only for an operator who needs them, e.g. to move accounts.
    #[arg(long)]
    include_secrets: bool,
}

pub async fn export(settings: &Settings, args: ExportArgs) -> anyhow::Result<()> {
    let mut filter = ExportFilter {
        from_sequence: args.from_sequence,
        since: args.since.as_deref().map(parse_time).transpose()?,
        aggregate_type: args.aggregate_type,
        after: None,
        include_secrets: args.include_secrets,
    };
    let mut writer: Box<dyn Write> = match &args.output {
        Some(path) if args.resume => {
            let after = match File::open(path) {
                Ok(file) => {
                    resume_point(BufReader::new(file)).with_context(|| format!("reading {}", path.display()))?
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => return Err(error).with_context(|| format!("opening {}", path.display())),
            };
            filter.after = after;
            let file = OpenOptions::new().create(true).append(true).open(path);
            Box::new(BufWriter::new(file.with_context(|| format!("opening {}", path.display()))?))
        }
        Some(path) => {
            let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Box::new(BufWriter::new(file))
        }
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };

    let nats = rapat_commands::connect(&settings.nats_url).await.context("connecting to NATS")?;
    let jetstream = async_nats::jetstream::new(nats);
    // A bar on a terminal only: in a pipeline or a log it would be noise.
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("exporting [{bar:40}] {pos}/{len} stream sequence ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = export_jsonl(&jetstream, &settings.namespace, &filter, &mut writer, |progress| {
        bar.set_length(progress.last_sequence);
        bar.set_position(progress.sequence);
    })
    .await
    .context("exporting")?;
    writer.flush().context("writing the export")?;
    bar.finish_and_clear();
    // stderr: stdout may be the export itself.
    eprintln!(
        "exported {} events up to stream sequence {} in {:.2} s",
        report.events,
        report.last_sequence,
        report.elapsed.as_secs_f64()
    );
    Ok(())
}
