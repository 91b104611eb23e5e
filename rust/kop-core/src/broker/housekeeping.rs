//! The broker's periodic jobs: fsync and retention, the log cleaner, the group and transaction
//! coordinators' timers, and following the other kop instances that share the storage.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Broker;
use crate::auth::Security;
use crate::config::{FsyncPolicy, StorageSpec};
use crate::shutdown::ShutdownSignal;

/// How often appended bytes are queued for writing between periodic fsyncs.
const WRITEBACK_EVERY: Duration = Duration::from_millis(100);

/// Periodic fsync (`fsync = "interval"`) and retention of logs, offsets and empty groups.
pub async fn storage_upkeep(broker: Arc<Broker>, mut shutdown: ShutdownSignal) {
    let config = broker.config.clone();
    let fsync_every = Duration::from_millis(config.fsync_interval_ms as u64);
    let mut fsync = tokio::time::interval(fsync_every);
    // Retention (and the removal of empty groups) first runs one period after start, not at
    // once: clients reconnecting to a restarted server find their groups as they left them.
    let retention_every = Duration::from_millis(config.log_retention_check_interval_ms as u64);
    let mut retention = tokio::time::interval_at(
        tokio::time::Instant::now() + retention_every,
        retention_every,
    );
    fsync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Between fsyncs, what was appended is queued for writing every WRITEBACK_EVERY: an fsync
    // of a whole second's bytes at once (60 MB at 60 MB/s) held produces up for tens of ms.
    // Only segment files have anything to write back.
    let on_files = matches!(
        StorageSpec::parse(&config.storage),
        Ok(StorageSpec::File(_))
    );
    let writeback_on =
        on_files && config.fsync == FsyncPolicy::Interval && fsync_every > WRITEBACK_EVERY * 2;
    let mut writeback = tokio::time::interval(WRITEBACK_EVERY);
    writeback.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = fsync.tick(), if config.fsync == FsyncPolicy::Interval => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || b.flush_all()).await;
            }
            _ = writeback.tick(), if writeback_on => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || b.start_writeback_all()).await;
            }
            _ = retention.tick() => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || b.enforce_retention(crate::now_ms())).await;
            }
            _ = shutdown.wait() => break,
        }
    }
}

/// The log cleaner (Kafka's one cleaner thread): a pass over the compacted partitions every
/// `log_cleaner_backoff_ms`, on a blocking thread, throttled to
/// `log_cleaner_io_max_bytes_per_second`; a stop interrupts a clean under way (it leaves
/// nothing behind). Pulsar logs are not compacted by kop yet (docs/compaction.md).
pub async fn log_cleaner(broker: Arc<Broker>, mut shutdown: ShutdownSignal) {
    let config = broker.config.clone();
    let throttle = Arc::new(crate::storage::compaction::Throttle::new(
        config.log_cleaner_io_max_bytes_per_second,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let every = Duration::from_millis(config.log_cleaner_backoff_ms.max(1) as u64);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let (b, t, s) = (broker.clone(), throttle.clone(), stop.clone());
        let mut pass = tokio::task::spawn_blocking(move || b.clean_logs(&t, &s));
        tokio::select! {
            _ = &mut pass => {}
            _ = shutdown.wait() => {
                stop.store(true, Ordering::Relaxed);
                let _ = pass.await;
                return;
            }
        }
    }
}

/// The group coordinator's timers: session expiry, join and sync deadlines. On local storage
/// also the reload of a group shard let go after a failed store write (on shared storage the
/// cluster check does that, if this instance still leads the shard).
pub async fn group_timers(broker: Arc<Broker>, mut shutdown: ShutdownSignal) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut takeover = tokio::time::interval(GROUP_SHARD_RELOAD_EVERY);
    takeover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let local = !broker.shares_storage();
    loop {
        tokio::select! {
            _ = tick.tick() => broker.groups.tick(),
            _ = takeover.tick(), if local => {
                let b = broker.clone();
                let _ = tokio::task::spawn_blocking(move || b.take_over_group_shards()).await;
            }
            _ = shutdown.wait() => break,
        }
    }
}

/// The transaction coordinator's timers: completing decided transactions (after a takeover,
/// or when a marker could not be written at once), aborting those past their timeout,
/// forgetting expired transactional ids.
pub async fn transaction_timers(broker: Arc<Broker>, mut shutdown: ShutdownSignal) {
    let mut tick = tokio::time::interval(crate::txn::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => broker.transactions.tick(&*broker).await,
            _ = shutdown.wait() => break,
        }
    }
}

/// How often a group shard let go after a failed store write is loaded again (local storage).
const GROUP_SHARD_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// How often an instance sharing its storage catches up with the others (members, topics).
const CLUSTER_SYNC_EVERY: Duration = Duration::from_millis(500);

/// Follows the other kop instances sharing the storage (`Broker::sync_cluster`).
pub async fn cluster_sync(
    broker: Arc<Broker>,
    security: Arc<Security>,
    mut shutdown: ShutdownSignal,
) {
    let mut tick = tokio::time::interval(CLUSTER_SYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait() => return,
        }
        let (b, s) = (broker.clone(), security.clone());
        let synced = tokio::task::spawn_blocking(move || {
            if b.sync_cluster()? {
                s.reload_stored()?;
            }
            Ok::<(), io::Error>(())
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        // For /ready: the remote storage answers, or why not.
        *broker.metrics.remote_error.lock() = synced.as_ref().err().map(|e| e.to_string());
        match synced {
            Ok(()) => {
                if last_error.take().is_some() {
                    tracing::info!("following the other kop instances again");
                }
            }
            Err(e) => {
                // Logged once per distinct error, not every tick while Pulsar is away.
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "catching up with the other kop instances failed");
                    last_error = Some(text);
                }
            }
        }
    }
}
