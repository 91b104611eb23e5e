//! KIP-932 share groups: ShareGroupHeartbeat, ShareGroupDescribe and DescribeShareGroupOffsets
//! (Alter/DeleteShareGroupOffsets are in `share_offsets.rs`).
//! Membership rules live in `crate::share::groups`, delivery state in `crate::share::states`.

use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as OffsetsGroup,
    DescribeShareGroupOffsetsResponsePartition as OffsetsPartition,
    DescribeShareGroupOffsetsResponseTopic as OffsetsTopic,
};
use kafka_protocol::messages::share_group_describe_response::{self as sgd, DescribedGroup};
use kafka_protocol::messages::share_group_heartbeat_response as sgh;
use kafka_protocol::messages::*;

use super::authz::{self, Operation, ResourceType};
use super::{sb, RequestContext};
use crate::error::KafkaError;
use crate::share::groups::{Assignment, ShareHeartbeat, HEARTBEAT_INTERVAL_MS};
use crate::share::ShareKey;

/// Kafka's answer when a group id names a group of another type.
fn other_type(ctx: &RequestContext, group_id: &str) -> bool {
    ctx.broker
        .groups
        .list()
        .iter()
        .any(|(id, ..)| id == group_id)
}

/// Starts the share partitions a group was just assigned, where this instance leads them:
/// `share.auto.offset.reset` applies from the moment of assignment, as in Kafka (a record
/// produced between the assignment and the first ShareFetch is delivered).
fn initialize(ctx: &RequestContext, group: &str, partitions: &[(uuid::Uuid, i32)]) {
    let states = &ctx.broker.share.states;
    let reset = ctx
        .broker
        .share
        .settings(&ctx.broker.groups.group_configs, group)
        .auto_offset_reset;
    for &(topic_id, index) in partitions {
        let Some(p) = ctx
            .broker
            .topic_by_id(&topic_id)
            .and_then(|t| t.partition(index))
        else {
            continue;
        };
        if p.ensure_served().is_err() {
            continue;
        }
        let start = reset.start_in(&p);
        let key = ShareKey {
            group: group.to_string(),
            topic_id,
            partition: index,
        };
        if let Err(e) = states.initialize(&key, start) {
            tracing::warn!(group, %topic_id, partition = index, "starting a share partition failed: {e}");
        }
    }
}

fn wire_assignment(a: Assignment) -> sgh::Assignment {
    sgh::Assignment::default().with_topic_partitions(
        a.into_iter()
            .map(|(t, ps)| {
                sgh::TopicPartitions::default()
                    .with_topic_id(t)
                    .with_partitions(ps.into_iter().collect())
            })
            .collect(),
    )
}

pub async fn heartbeat(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    let fail = |e: KafkaError, msg: String| {
        ShareGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(sb(msg)))
    };
    let topics = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .map(|t| t.as_str());
    if let Err((e, msg)) =
        authz::group_heartbeat_allowed(ctx, "ShareGroupHeartbeat", &req.group_id, topics).await
    {
        return fail(e, msg);
    }
    if let Err(e) = ctx.broker.groups.admit(&req.group_id) {
        return fail(e, e.to_string());
    }
    if req.member_id.is_empty() {
        return fail(
            KafkaError::InvalidRequest,
            "MemberId can't be empty.".into(),
        );
    }
    let hb = ShareHeartbeat {
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        rack_id: req.rack_id.map(|s| s.to_string()),
        subscribed: req
            .subscribed_topic_names
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    let broker = &ctx.broker;
    let topics = |name: &str| broker.topic(name).map(|t| (t.id, t.partition_count()));
    // As in Kafka, leaving or timing out of the group releases no records by itself: the
    // member's share session closing (epoch -1, or its connection closing) does.
    let out = broker.groups.share_heartbeat(&req.group_id, hb, &topics);
    match out {
        Err((e, msg)) => fail(e, msg),
        Ok(out) => {
            initialize(ctx, &req.group_id, &out.new_partitions);
            ShareGroupHeartbeatResponse::default()
                .with_member_id(Some(req.member_id.clone()))
                .with_member_epoch(out.epoch)
                .with_heartbeat_interval_ms(HEARTBEAT_INTERVAL_MS)
                .with_assignment(out.assignment.map(wire_assignment))
        }
    }
}

fn describe_assignment(ctx: &RequestContext, a: &Assignment) -> sgd::Assignment {
    sgd::Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(t, ps)| {
                let name = ctx
                    .broker
                    .topic_by_id(t)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                sgd::TopicPartitions::default()
                    .with_topic_id(*t)
                    .with_topic_name(TopicName(sb(name)))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub async fn describe(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let ids: Vec<&str> = req.group_ids.iter().map(|g| g.as_str()).collect();
    let decisions = authz::groups_with_operations(
        ctx,
        "ShareGroupDescribe",
        Operation::Describe,
        &ids,
        req.include_authorized_operations,
    )
    .await;
    let groups = req
        .group_ids
        .into_iter()
        .zip(decisions)
        .map(|(id, (allowed, operations))| {
            let base = DescribedGroup::default().with_group_id(id.clone());
            if !allowed {
                return base.with_error_code(KafkaError::GroupAuthorizationFailed.code());
            }
            if let Err(e) = ctx.broker.groups.admit(&id) {
                return base.with_error_code(e.code());
            }
            let described = ctx.broker.groups.with_share_group(&id, |g| {
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        sgd::Member::default()
                            .with_member_id(sb(&m.id))
                            .with_rack_id(m.rack_id.clone().map(sb))
                            .with_member_epoch(m.epoch)
                            .with_client_id(sb(&m.client_id))
                            .with_client_host(sb(&m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed.iter().map(|t| TopicName(sb(t))).collect(),
                            )
                            .with_assignment(describe_assignment(ctx, &m.assigned))
                    })
                    .collect();
                base.clone()
                    .with_group_state(sb(g.state_name()))
                    .with_group_epoch(g.epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(sb("simple"))
                    .with_members(members)
            });
            let mut g = match described {
                Ok(g) => g,
                Err(e) => {
                    let msg = if other_type(ctx, &id) {
                        format!("Group {} is not a share group.", &*id)
                    } else {
                        format!("Group {} not found.", &*id)
                    };
                    base.with_error_code(e.code())
                        .with_error_message(Some(sb(msg)))
                        .with_group_state(sb("Dead"))
                }
            };
            if req.include_authorized_operations {
                g.authorized_operations = operations;
            }
            g
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

/// DescribeShareGroupOffsets: each share partition's start offset (SPSO), -1 where the group
/// has no state for it.
pub async fn describe_offsets(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let base = OffsetsGroup::default().with_group_id(g.group_id.clone());
        if !authz::group_allowed(
            ctx,
            "DescribeShareGroupOffsets",
            Operation::Describe,
            &g.group_id,
        )
        .await
        {
            groups.push(base.with_error_code(KafkaError::GroupAuthorizationFailed.code()));
            continue;
        }
        if let Err(e) = ctx.broker.groups.admit(&g.group_id) {
            groups.push(base.with_error_code(e.code()));
            continue;
        }
        let stored = match ctx.broker.share.states.start_offsets(&g.group_id) {
            Ok(s) => s,
            Err(e) => {
                groups.push(base.with_error_code(e.code()));
                continue;
            }
        };
        // (topic name, [partition]) asked for, or every partition with state.
        let wanted: Vec<(String, Vec<i32>)> = match g.topics {
            Some(ts) => ts
                .into_iter()
                .map(|t| (t.topic_name.to_string(), t.partitions))
                .collect(),
            None => {
                let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
                for (topic_id, p, _) in &stored {
                    if let Some(t) = ctx.broker.topic_by_id(topic_id) {
                        by_topic.entry(t.name.clone()).or_default().push(*p);
                    }
                }
                by_topic.into_iter().collect()
            }
        };
        let names: Vec<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
        let denied = authz::denied(
            ctx,
            "DescribeShareGroupOffsets",
            Operation::Describe,
            ResourceType::Topic,
            names.iter().copied(),
        )
        .await;
        let topics = wanted
            .into_iter()
            .map(|(name, mut partitions)| {
                partitions.sort_unstable();
                let topic = ctx.broker.topic(&name);
                let err = if denied.contains(&name) {
                    Some(KafkaError::TopicAuthorizationFailed)
                } else if topic.is_none() {
                    Some(KafkaError::UnknownTopicOrPartition)
                } else {
                    None
                };
                let topic_id = topic.as_ref().map(|t| t.id).unwrap_or_default();
                OffsetsTopic::default()
                    .with_topic_name(TopicName(sb(name)))
                    .with_topic_id(topic_id)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|p| {
                                let part = OffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_leader_epoch(-1);
                                if let Some(e) = err {
                                    return part.with_start_offset(-1).with_error_code(e.code());
                                }
                                let start = stored
                                    .iter()
                                    .find(|(t, q, _)| *t == topic_id && *q == p)
                                    .map_or(-1, |(_, _, s)| *s);
                                part.with_start_offset(start)
                            })
                            .collect(),
                    )
            })
            .collect();
        groups.push(base.with_topics(topics));
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}
