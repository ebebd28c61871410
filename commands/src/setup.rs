//! Connecting to NATS and making sure the stream and snapshot bucket exist.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::config::EventStoreConfig;
use crate::error::StoreError;

/// Connects to NATS, failing fast (no endless retry) when nobody answers, so a
/// server that starts without NATS says so instead of hanging. Once connected,
/// the client reconnects for ever, at most [`RECONNECT_DELAY_MAX`] apart, and
/// sends its core subscriptions again when it does. `nats_url` may list several
/// servers, comma-separated (the nodes of a cluster).
pub async fn connect(nats_url: &str) -> Result<async_nats::Client, StoreError> {
    let servers: Vec<&str> = nats_url.split(',').map(str::trim).filter(|url| !url.is_empty()).collect();
    async_nats::ConnectOptions::new()
        .name("rapat")
        .connection_timeout(Duration::from_secs(3))
        .request_timeout(Some(Duration::from_secs(5)))
        .max_reconnects(None)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(|event| async move { log_connection_event(event) })
        .connect(servers)
        .await
        .map_err(|error| StoreError::unavailable(format!("cannot connect to NATS at {nats_url}: {error}")))
}

/// The longest wait between two reconnection attempts (async-nats's default
/// grows to 4 s), so a restarted NATS is back in use within about a second.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(1);

fn reconnect_delay(attempts: usize) -> Duration {
    let attempts = u64::try_from(attempts).unwrap_or(u64::MAX);
    Duration::from_millis(attempts.saturating_sub(1).saturating_mul(100)).min(RECONNECT_DELAY_MAX)
}

/// One line per connection change, and a count of connections made
/// (`rapat_nats_connections_total`), so every reconnection, and so every
/// re-sent subscription, shows.
fn log_connection_event(event: async_nats::Event) {
    match event {
        async_nats::Event::Connected => {
            metrics::counter!("rapat_nats_connections_total").increment(1);
            tracing::info!("connected to NATS; core subscriptions are (re)sent");
        }
        async_nats::Event::Disconnected => tracing::warn!("lost the NATS connection; reconnecting"),
        async_nats::Event::SlowConsumer(subscription) => {
            tracing::warn!(subscription, "a NATS subscription fell behind and messages were dropped")
        }
        other => tracing::info!(event = %other, "NATS connection event"),
    }
}

/// The oldest NATS whose JetStream can write to disk before it acknowledges
/// (`jetstream { sync_interval: always }`).
const FSYNC_BEFORE_ACK_SINCE: (u64, u64) = (2, 10);

/// What to tell an operator when the connected NATS cannot keep an acknowledged
/// event through a power failure (SPEC §8), or `None`. A newer server can, when
/// configured so; its configuration is not visible to clients.
pub fn power_loss_warning(client: &async_nats::Client) -> Option<String> {
    warning_for_version(&client.server_info().version)
}

fn warning_for_version(version: &str) -> Option<String> {
    let mut parts = version.split('.').map(|part| part.parse::<u64>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return Some(format!("cannot read the NATS server's version {version:?}; make sure it is 2.10 or later"));
    };
    ((major, minor) < FSYNC_BEFORE_ACK_SINCE).then(|| {
        format!(
            "NATS {version} cannot write to disk before acknowledging (that needs 2.10 or later with \
             `jetstream {{ sync_interval: always }}`): acknowledged events can be lost on a power failure"
        )
    })
}

/// Creates the event stream and the snapshot bucket when they are missing. An
/// existing stream is left as it is: its limits are an operator's decision.
pub async fn ensure_event_store(jetstream: &jetstream::Context, config: &EventStoreConfig) -> Result<(), StoreError> {
    let stream_name = config.namespace.events_stream();
    let stream_config = stream::Config {
        name: stream_name.clone(),
        description: Some("rapat domain events: the source of truth".into()),
        subjects: vec![config.namespace.all_event_subjects()],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: config.replicas,
        max_age: config.max_age.unwrap_or_default(),
        // An acknowledged event must never disappear.
        deny_delete: true,
        deny_purge: true,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    create_or_open(jetstream, stream_config)
        .await
        .map_err(|error| StoreError::unavailable(format!("cannot open stream {stream_name}: {error}")))?;

    if config.snapshot_every > 0 {
        ensure_snapshot_bucket(jetstream, config).await?;
    }
    Ok(())
}

async fn ensure_snapshot_bucket(jetstream: &jetstream::Context, config: &EventStoreConfig) -> Result<(), StoreError> {
    let description = "rapat aggregate snapshots (a cache: safe to delete)";
    ensure_kv_bucket(jetstream, &config.namespace.snapshots_bucket(), description, config.max_age, config.replicas)
        .await
}

/// Creates a key-value bucket's backing stream directly, following the key-value
/// layout (`KV_<bucket>`, subjects `$KV.<bucket>.>`, one value per key), when the
/// bucket is missing. async-nats's `create_key_value` first asks for account info
/// in a shape NATS 2.9 does not send, so it fails there; the bucket itself works
/// the same on every version.
pub async fn ensure_kv_bucket(
    jetstream: &jetstream::Context,
    bucket: &str,
    description: &str,
    max_age: Option<Duration>,
    replicas: usize,
) -> Result<(), StoreError> {
    if jetstream.get_key_value(bucket).await.is_ok() {
        return Ok(());
    }
    let backing_stream = stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_string()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: max_age.unwrap_or_default(),
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    };
    create_or_open(jetstream, backing_stream)
        .await
        .map_err(|error| StoreError::unavailable(format!("cannot create key-value bucket {bucket}: {error}")))?;
    Ok(())
}

/// How long a replicated stream's creation is retried: a NATS cluster that has
/// just started may not have elected a meta leader or seen its peers yet, and
/// refuses to place a stream on three nodes until it has.
const REPLICA_PLACEMENT_WAIT: Duration = Duration::from_secs(30);

/// Opens the stream, creating it when missing; a replicated one is retried for
/// up to [`REPLICA_PLACEMENT_WAIT`], so rapat started with its cluster does not
/// exit for a cluster that is still forming.
async fn create_or_open(
    jetstream: &jetstream::Context,
    config: stream::Config,
) -> Result<(), jetstream::context::CreateStreamError> {
    let give_up = std::time::Instant::now() + REPLICA_PLACEMENT_WAIT;
    loop {
        match jetstream.get_or_create_stream(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) if config.num_replicas > 1 && std::time::Instant::now() < give_up => {
                tracing::info!(stream = config.name, %error, "the NATS cluster cannot place the replicated stream yet; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{RECONNECT_DELAY_MAX, reconnect_delay, warning_for_version};

    #[test]
    fn reconnection_attempts_start_at_once_and_are_never_more_than_a_second_apart() {
        assert_eq!(reconnect_delay(1), Duration::ZERO);
        assert_eq!(reconnect_delay(2), Duration::from_millis(100));
        assert!((1..10_000).all(|attempt| reconnect_delay(attempt) <= RECONNECT_DELAY_MAX));
        assert_eq!(reconnect_delay(usize::MAX), RECONNECT_DELAY_MAX);
    }

    #[test]
    fn only_servers_that_cannot_fsync_before_acknowledging_are_warned_about() {
        let check =
            |version: &str, warned: bool| assert_eq!(warning_for_version(version).is_some(), warned, "{version}");
        check("2.9.10", true);
        check("2.2.0", true);
        check("1.4.1", true);
        check("2.10.0", false);
        check("2.10.27", false);
        check("2.15.1", false);
        check("3.0.0-beta.1", false);
        check("unknown", true);
    }
}
