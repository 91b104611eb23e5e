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

use super::authz::{self, Operation, ResourceType};
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
    // READ on the group and on every topic, in one decision.
    let (group_allowed, denied_topics) = if authz::allow_all(ctx) {
        (true, std::collections::HashSet::new())
    } else {
        let mut names: Vec<&str> = req.topics.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut actions = vec![(Operation::Read, ResourceType::Group, req.group_id.as_str())];
        actions.extend(
            names
                .iter()
                .map(|n| (Operation::Read, ResourceType::Topic, *n)),
        );
        let decisions = authz::authorize(ctx, "OffsetCommit", &actions).await;
        let denied = names
            .iter()
            .zip(decisions.iter().skip(1))
            .filter(|(_, ok)| !**ok)
            .map(|(n, _)| n.to_string())
            .collect();
        (decisions.first().copied().unwrap_or(false), denied)
    };
    let mut offsets = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            let metadata = p.committed_metadata.as_deref().unwrap_or_default();
            let entry = if !group_allowed {
                Err(KafkaError::GroupAuthorizationFailed)
            } else if denied_topics.contains(t.name.as_str()) {
                Err(KafkaError::TopicAuthorizationFailed)
            } else if !partition_exists(ctx, &t.name, p.partition_index) {
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
    let unauthorized = |r: &Result<OffsetEntry, KafkaError>| {
        matches!(
            r,
            Err(KafkaError::GroupAuthorizationFailed | KafkaError::TopicAuthorizationFailed)
        )
    };
    // Nothing authorized: the group is not touched (not even created).
    let results = if offsets.iter().all(|(_, _, r)| unauthorized(r)) {
        offsets
            .into_iter()
            .map(|(t, p, r)| (t, p, r.map(|_| ())))
            .collect()
    } else {
        match ctx.broker.groups.commit(
            &req.group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id_or_member_epoch,
            offsets.clone(),
        ) {
            Ok(r) => r,
            // A group error replaces every result except the authorization failures.
            Err(e) => {
                let e = missing_group_error(ctx, &req, version, e);
                offsets
                    .into_iter()
                    .map(|(t, p, r)| {
                        let r = match r {
                            Err(a) if unauthorized(&Err(a)) => Err(a),
                            _ => Err(e),
                        };
                        (t, p, r)
                    })
                    .collect()
            }
        }
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

/// A commit with a generation (or member epoch) to a group that does not exist: Kafka answers
/// GROUP_ID_NOT_FOUND from v9 and ILLEGAL_GENERATION before (its `validateOffsetCommit`),
/// where the coordinator, finding no such member, says UNKNOWN_MEMBER_ID. Only the error path
/// looks the group up.
fn missing_group_error(
    ctx: &RequestContext,
    req: &OffsetCommitRequest,
    version: i16,
    e: KafkaError,
) -> KafkaError {
    let unknown_group = e == KafkaError::UnknownMemberId
        && req.generation_id_or_member_epoch >= 0
        && !ctx
            .broker
            .groups
            .list()
            .iter()
            .any(|(id, ..)| id.as_str() == req.group_id.as_str());
    match unknown_group {
        false => e,
        true if version >= 9 => KafkaError::GroupIdNotFound,
        true => KafkaError::IllegalGeneration,
    }
}

type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// One partition's answer: (partition, offset, leader epoch, metadata, error).
type FetchedPartition = (i32, i64, i32, String, Option<KafkaError>);
type Fetched = Vec<(String, Vec<FetchedPartition>)>;

/// One group's committed offsets; with `require_stable` (v7+), UNSTABLE_OFFSET_COMMIT for a
/// partition with an offset pending in a transaction (as Kafka's `fetchOffsets`).
fn fetch_group(
    ctx: &RequestContext,
    group: &str,
    wanted: Wanted,
    require_stable: bool,
) -> Result<Fetched, KafkaError> {
    ctx.broker.groups.admit(group)?;
    Ok(ctx
        .broker
        .groups
        .fetch_offsets(group, wanted, require_stable)
        .into_iter()
        .map(|(topic, parts)| {
            let parts = parts
                .into_iter()
                .map(|(p, e)| match e {
                    Ok(Some(e)) => (p, e.offset, e.leader_epoch, e.metadata, None),
                    Ok(None) => (p, -1, -1, String::new(), None),
                    Err(e) => (p, -1, -1, String::new(), Some(e)),
                })
                .collect();
            (topic, parts)
        })
        .collect())
}

/// One group of an OffsetFetch request and its answer.
struct GroupFetch {
    group: String,
    /// Topics were listed (else: every committed topic).
    explicit: bool,
    requested: Vec<(String, Vec<i32>)>,
    result: Result<Fetched, KafkaError>,
}

/// DESCRIBE on every group and on every topic answered, in one decision: a denied group gets
/// GROUP_AUTHORIZATION_FAILED; a denied topic TOPIC_AUTHORIZATION_FAILED on its partitions
/// when listed, and is left out when every topic was asked for (as Kafka).
async fn authorize_fetch(ctx: &RequestContext, fetches: &mut [GroupFetch]) {
    if authz::allow_all(ctx) {
        return;
    }
    let mut topics: Vec<&str> = fetches
        .iter()
        .filter_map(|f| f.result.as_ref().ok())
        .flat_map(|ts| ts.iter().map(|(t, _)| t.as_str()))
        .collect();
    topics.sort_unstable();
    topics.dedup();
    let mut actions: Vec<_> = fetches
        .iter()
        .map(|f| (Operation::Describe, ResourceType::Group, f.group.as_str()))
        .collect();
    actions.extend(
        topics
            .iter()
            .map(|t| (Operation::Describe, ResourceType::Topic, *t)),
    );
    // Topics that only filter an all-topics answer are not logged when denied (as Kafka).
    let listed: std::collections::HashSet<&str> = fetches
        .iter()
        .filter(|f| f.explicit)
        .flat_map(|f| f.requested.iter().map(|(t, _)| t.as_str()))
        .collect();
    let groups = fetches.len();
    let decisions = authz::decide(ctx, "OffsetFetch", &actions, |i| {
        i < groups || actions.get(i).is_some_and(|a| listed.contains(a.2))
    })
    .await;
    let denied_topics: std::collections::HashSet<String> = topics
        .iter()
        .zip(decisions.iter().skip(fetches.len()))
        .filter(|(_, ok)| !**ok)
        .map(|(t, _)| t.to_string())
        .collect();
    for (i, f) in fetches.iter_mut().enumerate() {
        if !decisions.get(i).copied().unwrap_or(false) {
            f.result = Err(KafkaError::GroupAuthorizationFailed);
            continue;
        }
        let explicit = f.explicit;
        if let Ok(ts) = &mut f.result {
            if explicit {
                for (t, parts) in ts.iter_mut() {
                    if denied_topics.contains(t.as_str()) {
                        for part in parts.iter_mut() {
                            *part = (
                                part.0,
                                -1,
                                -1,
                                String::new(),
                                Some(KafkaError::TopicAuthorizationFailed),
                            );
                        }
                    }
                }
            } else {
                ts.retain(|(t, _)| !denied_topics.contains(t.as_str()));
            }
        }
    }
}

pub async fn offset_fetch(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = header.request_api_version;
    let require_stable = version >= 7 && req.require_stable;
    let fetch = |group: &str, wanted: Wanted, member_check: Result<(), KafkaError>| {
        let requested = wanted.clone().unwrap_or_default();
        GroupFetch {
            group: group.to_string(),
            explicit: wanted.is_some(),
            requested,
            result: member_check.and_then(|()| fetch_group(ctx, group, wanted, require_stable)),
        }
    };
    if version >= 8 {
        let mut fetches: Vec<GroupFetch> = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted: Wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes))
                        .collect()
                });
                let member_check = match &g.member_id {
                    Some(member) if version >= 9 => {
                        ctx.broker
                            .groups
                            .validate_fetch(&g.group_id, member, g.member_epoch)
                    }
                    _ => Ok(()),
                };
                fetch(&g.group_id, wanted, member_check)
            })
            .collect();
        authorize_fetch(ctx, &mut fetches).await;
        let groups = fetches
            .into_iter()
            .map(|f| {
                let resp = OffsetFetchResponseGroup::default().with_group_id(GroupId(sb(f.group)));
                match f.result {
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
                                            .map(|(p, offset, epoch, metadata, error)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(sb(metadata)))
                                                    .with_error_code(
                                                        error.map_or(0, KafkaError::code),
                                                    )
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
    let mut fetches = [fetch(&req.group_id, wanted, Ok(()))];
    authorize_fetch(ctx, &mut fetches).await;
    let [f] = fetches;
    let topics = match f.result {
        Ok(topics) => topics,
        Err(e) if version >= 2 => return OffsetFetchResponse::default().with_error_code(e.code()),
        // Before v2 there is no group error: it is reported on every requested partition.
        Err(e) if e == KafkaError::GroupAuthorizationFailed => f
            .requested
            .into_iter()
            .map(|(t, ps)| {
                let parts = ps
                    .into_iter()
                    .map(|p| (p, -1, -1, String::new(), Some(e)))
                    .collect();
                (t, parts)
            })
            .collect(),
        Err(_) => return OffsetFetchResponse::default(),
    };
    OffsetFetchResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(topic, parts)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, offset, epoch, metadata, error)| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(if version >= 5 {
                                        epoch
                                    } else {
                                        -1
                                    })
                                    .with_metadata(Some(sb(metadata)))
                                    .with_error_code(error.map_or(0, KafkaError::code))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
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
    // DELETE on the group and READ on every topic, in one decision.
    let denied_topics: std::collections::HashSet<String> = if authz::allow_all(ctx) {
        Default::default()
    } else {
        let mut names: Vec<&str> = wanted.iter().map(|(t, _)| t.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut actions = vec![(
            Operation::Delete,
            ResourceType::Group,
            req.group_id.as_str(),
        )];
        actions.extend(
            names
                .iter()
                .map(|n| (Operation::Read, ResourceType::Topic, *n)),
        );
        let decisions = authz::authorize(ctx, "OffsetDelete", &actions).await;
        if !decisions.first().copied().unwrap_or(false) {
            return OffsetDeleteResponse::default()
                .with_error_code(KafkaError::GroupAuthorizationFailed.code());
        }
        names
            .iter()
            .zip(decisions.iter().skip(1))
            .filter(|(_, ok)| !**ok)
            .map(|(n, _)| n.to_string())
            .collect()
    };
    // Offsets of denied topics are not deleted (their partitions are asked for as none).
    let allowed: Vec<(String, Vec<i32>)> = wanted
        .iter()
        .map(|(t, ps)| {
            let ps = if denied_topics.contains(t.as_str()) {
                Vec::new()
            } else {
                ps.clone()
            };
            (t.clone(), ps)
        })
        .collect();
    match ctx.broker.groups.delete_offsets(&req.group_id, &allowed) {
        Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
        Ok(results) => {
            let topics = wanted
                .into_iter()
                .zip(results)
                .map(|((topic, parts), rs)| {
                    let denied = denied_topics.contains(topic.as_str());
                    let partitions = parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let r = if denied {
                                Err(KafkaError::TopicAuthorizationFailed)
                            } else {
                                rs.get(i).copied().unwrap_or(Ok(()))
                            };
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

#[cfg(test)]
#[path = "offsets_tests.rs"]
mod tests;
