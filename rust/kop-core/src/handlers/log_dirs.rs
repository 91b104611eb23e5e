//! DescribeLogDirs: where each partition's data lives and how large it is (`kafka-log-dirs
//! --describe`, `Admin.describeLogDirs`), answered as Kafka 4.4 does for one log directory.
//!
//! kop has one "log directory" per instance: the data directory of `file://` storage (with the
//! file system's total and usable bytes), `memory://`, or the Pulsar namespace. Sizes are of
//! the partitions this instance serves; on Pulsar kop does not yet ask Pulsar for a topic's
//! stored size and answers -1 (unknown) for it.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::*;

use super::{authz, sb, RequestContext};
use crate::config::StorageSpec;
use crate::error::KafkaError;

/// The log directory's name and the file system's (total, usable) bytes (-1: not known).
fn log_dir(ctx: &RequestContext) -> (String, i64, i64) {
    let config = &ctx.broker.config;
    match config.storage_spec() {
        StorageSpec::File(path) => {
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            let (total, usable) = disk_space(&path);
            (path.display().to_string(), total, usable)
        }
        StorageSpec::Memory => ("memory://".into(), -1, -1),
        StorageSpec::Pulsar(url) => (
            format!("{url}/{}/{}", config.pulsar_tenant, config.pulsar_namespace),
            -1,
            -1,
        ),
    }
}

#[cfg(unix)]
fn disk_space(path: &std::path::Path) -> (i64, i64) {
    match rustix::fs::statvfs(path) {
        Ok(s) => {
            let bytes =
                |blocks: u64| i64::try_from(blocks.saturating_mul(s.f_frsize)).unwrap_or(i64::MAX);
            (bytes(s.f_blocks), bytes(s.f_bavail))
        }
        Err(_) => (-1, -1),
    }
}

#[cfg(not(unix))]
fn disk_space(_path: &std::path::Path) -> (i64, i64) {
    (-1, -1)
}

/// How long DescribeLogDirs waits for Pulsar's partition sizes not cached yet.
const STORED_SIZE_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

pub async fn handle(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !authz::cluster_allowed(ctx, "DescribeLogDirs", authz::Operation::Describe).await {
        return DescribeLogDirsResponse::default()
            .with_error_code(KafkaError::ClusterAuthorizationFailed.code());
    }
    let broker = &ctx.broker;
    // None: every partition; else the partitions asked (unknown ones are left out, as Kafka).
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|topics| {
        let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for t in topics {
            wanted
                .entry(t.topic.to_string())
                .or_default()
                .extend(t.partitions);
        }
        wanted
    });
    let remote = matches!(broker.config.storage_spec(), StorageSpec::Pulsar(_));
    // The partitions served here, by topic.
    let mut served = Vec::new();
    for topic in broker.topics() {
        let asked = match &wanted {
            None => None,
            Some(w) => match w.get(&topic.name) {
                Some(indexes) => Some(indexes),
                None => continue,
            },
        };
        let partitions: Vec<_> = topic
            .partitions()
            .into_iter()
            .filter(|p| asked.is_none_or(|indexes| indexes.contains(&p.index)))
            .filter(|p| p.size_bytes().is_some())
            .collect();
        if !partitions.is_empty() {
            served.push((topic.name.clone(), partitions));
        }
    }
    // On Pulsar the sizes are asked for in the background; a first answer waits for them a
    // little (without holding a thread), then reports what is still unknown as -1.
    if remote {
        let deadline = tokio::time::Instant::now() + STORED_SIZE_WAIT;
        while served
            .iter()
            .flat_map(|(_, ps)| ps)
            .any(|p| p.stored_size().is_none())
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
    let topics = served
        .into_iter()
        .map(|(name, partitions)| {
            DescribeLogDirsTopic::default()
                .with_name(TopicName(sb(&name)))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| {
                            let size = p.stored_size().map_or(-1, |n| n as i64);
                            DescribeLogDirsPartition::default()
                                .with_partition_index(p.index)
                                .with_partition_size(size)
                        })
                        .collect(),
                )
        })
        .collect();
    let (dir, total, usable) = log_dir(ctx);
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(sb(dir))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable)])
}
