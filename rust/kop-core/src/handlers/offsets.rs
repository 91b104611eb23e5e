//! OffsetCommit, OffsetFetch (single- and multi-group forms) and OffsetDelete.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;

use super::{sb, RequestContext};
use crate::error::KafkaError;
use crate::group::offsets::OFFSET_METADATA_MAX_BYTES;
use crate::group::OffsetEntry;

fn partition_exists(ctx: &RequestContext, topic: &str, partition: i32) -> bool {
    ctx.broker
        .topic(topic)
        .is_some_and(|t| t.partition(partition).is_some())
}

pub async fn offset_commit(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = header.request_api_version;
    let now = crate::now_ms();
    let mut offsets = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or_default();
            let entry = if !partition_exists(ctx, &t.name, p.partition_index) {
                Err(KafkaError::UnknownTopicOrPartition)
            } else if metadata.len() > OFFSET_METADATA_MAX_BYTES {
                Err(KafkaError::OffsetMetadataTooLarge)
            } else {
                Ok(OffsetEntry {
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: metadata.to_string(),
                    commit_ms: now,
                })
            };
            offsets.push((t.name.to_string(), p.partition_index, entry));
        }
    }
    let results = match ctx.broker.groups.commit(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id_or_member_epoch,
        offsets.clone(),
    ) {
        Ok(r) => r,
        Err(e) => offsets
            .into_iter()
            .map(|(t, p, _)| (t, p, Err(e)))
            .collect(),
    };
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for (topic, partition, r) in results {
        let part = OffsetCommitResponsePartition::default()
            .with_partition_index(partition)
            .with_error_code(crate::error::code_of(&r));
        match topics.last_mut() {
            Some(t) if *t.name == *topic => t.partitions.push(part),
            _ => topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}

type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// One group's committed offsets as (topic, [(partition, offset, epoch, metadata)]).
#[allow(clippy::type_complexity)]
fn fetch_group(
    ctx: &RequestContext,
    group: &str,
    wanted: Wanted,
) -> Result<Vec<(String, Vec<(i32, i64, i32, String)>)>, KafkaError> {
    if group.is_empty() {
        return Err(KafkaError::InvalidGroupId);
    }
    Ok(ctx
        .broker
        .groups
        .fetch(group, wanted)
        .into_iter()
        .map(|(topic, parts)| {
            let parts = parts
                .into_iter()
                .map(|(p, e)| match e {
                    Some(e) => (p, e.offset, e.leader_epoch, e.metadata),
                    None => (p, -1, -1, String::new()),
                })
                .collect();
            (topic, parts)
        })
        .collect())
}

pub async fn offset_fetch(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = header.request_api_version;
    // kop has no transactional offset commits pending, so `require_stable` always holds.
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted: Wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let resp = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                let member_check = match &g.member_id {
                    Some(member) if version >= 9 => {
                        ctx.broker
                            .groups
                            .validate_fetch(&g.group_id, member, g.member_epoch)
                    }
                    _ => Ok(()),
                };
                match member_check.and_then(|()| fetch_group(ctx, &g.group_id, wanted)) {
                    Err(e) => resp.with_error_code(e.code()),
                    Ok(topics) => resp.with_topics(
                        topics
                            .into_iter()
                            .map(|(topic, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(sb(topic)))
                                    .with_partitions(
                                        parts
                                            .into_iter()
                                            .map(|(p, offset, epoch, metadata)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(sb(metadata)))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.to_string(), t.partition_indexes))
            .collect()
    });
    match fetch_group(ctx, &req.group_id, wanted) {
        Err(e) => {
            let resp = OffsetFetchResponse::default();
            if version >= 2 {
                resp.with_error_code(e.code())
            } else {
                resp
            }
        }
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(topic, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, offset, epoch, metadata)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(if version >= 5 {
                                            epoch
                                        } else {
                                            -1
                                        })
                                        .with_metadata(Some(sb(metadata)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

pub async fn offset_delete(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let wanted: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    match ctx.broker.groups.delete_offsets(&req.group_id, &wanted) {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(results) => {
            let topics = wanted
                .into_iter()
                .zip(results)
                .map(|((topic, parts), rs)| {
                    let partitions = parts
                        .into_iter()
                        .zip(rs)
                        .map(|(p, r)| {
                            let r = r.and_then(|()| {
                                if partition_exists(ctx, &topic, p) {
                                    Ok(())
                                } else {
                                    Err(KafkaError::UnknownTopicOrPartition)
                                }
                            });
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(crate::error::code_of(&r))
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partitions(partitions)
                })
                .collect();
            OffsetDeleteResponse::default().with_topics(topics)
        }
    }
}
