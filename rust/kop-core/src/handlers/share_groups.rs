//! KIP-932 share groups: ShareGroupHeartbeat, ShareGroupDescribe and DescribeShareGroupOffsets
//! (v1 with KIP-1226's lag; Alter/DeleteShareGroupOffsets are in `share_offsets.rs`).
//! Membership rules live in `crate::share::groups`, delivery state in `crate::share::states`.

use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as OffsetsGroup,
    DescribeShareGroupOffsetsResponsePartition as OffsetsPartition,
    DescribeShareGroupOffsetsResponseTopic as OffsetsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::share_group_describe_response::{self as sgd, DescribedGroup};
use kafka_protocol::messages::share_group_heartbeat_response as sgh;
use kafka_protocol::messages::*;

use std::collections::{BTreeMap, HashMap};

use super::authz::{self, Operation, ResourceType};
use super::share_wire;
use super::{sb, Outcome, RequestContext};
use crate::codec::frame::RequestFrame;
use crate::error::KafkaError;
use crate::share::groups::{Assignment, ShareHeartbeat, HEARTBEAT_INTERVAL_MS};
use crate::share::states::Summary;
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

/// DescribeShareGroupOffsets v0: each share partition's start offset (SPSO), -1 where the
/// group has no state for it.
pub async fn describe_offsets(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    describe_offsets_any(ctx, req, false).await.0
}

/// DescribeShareGroupOffsets v1, decoded and encoded by hand (`share_wire.rs`): v0 with each
/// partition's lag.
pub async fn dispatch_offsets_v1(
    ctx: &RequestContext,
    frame: RequestFrame,
    started: std::time::Instant,
) -> Outcome {
    let key = frame.api_key;
    let req = match share_wire::describe_offsets_request(frame.body) {
        Ok(req) => req,
        Err(e) => return Outcome::Close(format!("DescribeShareGroupOffsets v1: {e}")),
    };
    let (mut resp, lags) = describe_offsets_any(ctx, req, true).await;
    super::response_errors::count(&ctx.broker.metrics.requests, key, &resp);
    let client_id = frame.header.client_id.as_deref();
    let throttle = super::request_time_throttle(ctx, key, client_id, started);
    resp.throttle_time_ms = resp
        .throttle_time_ms
        .max(throttle.min(i32::MAX as u64) as i32);
    let body = share_wire::describe_offsets_response(&resp, &lags);
    Outcome::Respond(super::streams_wire::frame(
        frame.header.correlation_id,
        body,
    ))
}

/// A partition answered: its index, its error, its stored state.
type Answered = (i32, Option<KafkaError>, Option<Summary>);

/// The response, and with `with_lag` each partition's lag in the response's order (-1 where
/// it is unknown: no state, an error, or no high watermark to be had).
async fn describe_offsets_any(
    ctx: &RequestContext,
    req: DescribeShareGroupOffsetsRequest,
    with_lag: bool,
) -> (DescribeShareGroupOffsetsResponse, Vec<i64>) {
    let mut groups = Vec::with_capacity(req.groups.len());
    let mut lags = Vec::new();
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
        let stored = match ctx.broker.share.states.summaries(&g.group_id) {
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
                let mut by_topic: BTreeMap<String, Vec<i32>> = Default::default();
                for s in &stored {
                    if let Some(t) = ctx.broker.topic_by_id(&s.topic_id) {
                        by_topic
                            .entry(t.name.clone())
                            .or_default()
                            .push(s.partition);
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
        // Each answered partition: (topic, partition, error, its stored state).
        let mut answered: Vec<(String, uuid::Uuid, Vec<Answered>)> =
            Vec::with_capacity(wanted.len());
        for (name, mut partitions) in wanted {
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
            let parts = partitions
                .into_iter()
                .map(|p| {
                    let summary = err.is_none().then(|| {
                        stored
                            .iter()
                            .find(|s| s.topic_id == topic_id && s.partition == p)
                            .copied()
                    });
                    (p, err, summary.flatten())
                })
                .collect();
            answered.push((name, topic_id, parts));
        }
        if with_lag {
            let with_state: Vec<(&str, i32)> = answered
                .iter()
                .flat_map(|(name, _, parts)| {
                    parts
                        .iter()
                        .filter(|(_, _, s)| s.is_some())
                        .map(move |(p, _, _)| (name.as_str(), *p))
                })
                .collect();
            let marks = high_watermarks(ctx, &with_state).await;
            for (name, _, parts) in &answered {
                for (p, _, summary) in parts {
                    let mark = marks.get(&(name.clone(), *p)).copied();
                    lags.push(match (summary, mark) {
                        (Some(s), Some(hw)) => s.lag(hw),
                        _ => -1,
                    });
                }
            }
        }
        let topics = answered
            .into_iter()
            .map(|(name, topic_id, parts)| {
                OffsetsTopic::default()
                    .with_topic_name(TopicName(sb(name)))
                    .with_topic_id(topic_id)
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, err, summary)| {
                                let part = OffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_leader_epoch(-1)
                                    .with_start_offset(summary.map_or(-1, |s| s.start));
                                match err {
                                    Some(e) => part.with_error_code(e.code()),
                                    None => part,
                                }
                            })
                            .collect(),
                    )
            })
            .collect();
        groups.push(base.with_topics(topics));
    }
    (
        DescribeShareGroupOffsetsResponse::default().with_groups(groups),
        lags,
    )
}

/// The high watermarks of `partitions` (Kafka's group coordinator asks the leaders with a
/// ListOffsets for the latest offset, read uncommitted): here where this instance serves the
/// partition, from the instance leading it otherwise (one ListOffsets per instance). A
/// partition whose high watermark cannot be had is missing (its lag is -1).
async fn high_watermarks(
    ctx: &RequestContext,
    partitions: &[(&str, i32)],
) -> HashMap<(String, i32), i64> {
    let broker = &ctx.broker;
    let mut marks = HashMap::new();
    let mut elsewhere: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
    for &(name, index) in partitions {
        let Some(p) = broker.topic(name).and_then(|t| t.partition(index)) else {
            continue;
        };
        if p.ensure_served().is_ok() {
            marks.insert((name.to_string(), index), p.high_watermark());
            continue;
        }
        let node = broker.cluster.leader(name, index);
        if node != broker.cluster.node_id() {
            elsewhere
                .entry(node)
                .or_default()
                .entry(name)
                .or_default()
                .push(index);
        }
    }
    for (node, topics) in elsewhere {
        let Some(endpoint) = broker.cluster.endpoint(node, broker.peers.listener()) else {
            continue;
        };
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(sb(name)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|index| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(index)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let Ok(resp) = broker
            .peers
            .call(node, &endpoint, &req, LIST_OFFSETS_VERSION)
            .await
        else {
            continue;
        };
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code == 0 {
                    marks.insert((t.name.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    marks
}

/// The ListOffsets version asked of a peer for a high watermark (any with `Timestamp`).
const LIST_OFFSETS_VERSION: i16 = 7;

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup as G, DescribeShareGroupOffsetsRequestTopic as T,
    };

    use super::*;

    fn req(group: &str, topics: Option<&[(&str, &[i32])]>) -> DescribeShareGroupOffsetsRequest {
        DescribeShareGroupOffsetsRequest::default().with_groups(vec![G::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        T::default()
                            .with_topic_name(TopicName(sb(*t)))
                            .with_partitions(ps.to_vec())
                    })
                    .collect()
            }))])
    }

    /// Each answered partition's lag comes in the response's order: the share partition with
    /// state has one (here the empty log's: 0), one without state or of an unknown topic -1.
    #[tokio::test]
    async fn lags_follow_the_answered_partitions() {
        let ctx = RequestContext::builder().build();
        let topic = ctx.topic("t", 3);
        let key = ShareKey {
            group: "g".into(),
            topic_id: topic.id,
            partition: 1,
        };
        ctx.broker.share.states.initialize(&key, 0).unwrap();
        let asked: &[(&str, &[i32])] = &[("t", &[2, 1, 0]), ("nope", &[0])];
        let (resp, lags) = describe_offsets_any(&ctx, req("g", Some(asked)), true).await;
        let g = &resp.groups[0];
        let starts: Vec<(i32, i64, i16)> = g
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| (p.partition_index, p.start_offset, p.error_code))
            .collect();
        assert_eq!(starts, vec![(0, -1, 0), (1, 0, 0), (2, -1, 0), (0, -1, 3)]);
        assert_eq!(lags, vec![-1, 0, -1, -1]);
        // Every partition with state (null topics); v0 has no lags.
        let (resp, lags) = describe_offsets_any(&ctx, req("g", None), true).await;
        assert_eq!(resp.groups[0].topics[0].partitions.len(), 1);
        assert_eq!(lags, vec![0]);
        let (_, lags) = describe_offsets_any(&ctx, req("g", None), false).await;
        assert!(lags.is_empty());
    }
}
