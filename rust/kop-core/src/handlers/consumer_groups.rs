//! KIP-848: ConsumerGroupHeartbeat and ConsumerGroupDescribe. The rules live in
//! `crate::group::consumer`.

use kafka_protocol::messages::consumer_group_describe_response::{self as cgd, DescribedGroup};
use kafka_protocol::messages::consumer_group_heartbeat_response::{self as cgh};
use kafka_protocol::messages::*;
use uuid::Uuid;

use super::authz::{self, Operation, ResourceType};
use super::{sb, RequestContext};
use crate::error::KafkaError;
use crate::group::assignor::Assignment;
use crate::group::consumer::{compile_regex, HeartbeatParams};

/// Kafka's internal topics, which a regex never matches (`Topic.isInternal`).
const INTERNAL_TOPICS: [&str; 3] = [
    "__consumer_offsets",
    "__transaction_state",
    "__share_group_state",
];

/// The topics `pattern` matches now that the member may DESCRIBE, sorted (Kafka resolves a
/// regex against the topics the member is authorized to describe).
async fn regex_topics(ctx: &RequestContext, pattern: &str) -> Vec<String> {
    let Ok(re) = compile_regex(pattern) else {
        return Vec::new();
    };
    let matched: Vec<String> = ctx
        .broker
        .topics()
        .iter()
        .map(|t| t.name.to_string())
        .filter(|n| re.is_match(n) && !INTERNAL_TOPICS.contains(&n.as_str()))
        .collect();
    if authz::allow_all(ctx) {
        return matched;
    }
    let denied = authz::denied(
        ctx,
        "ConsumerGroupHeartbeat",
        Operation::Describe,
        ResourceType::Topic,
        matched.iter().map(String::as_str),
    )
    .await;
    matched
        .into_iter()
        .filter(|n| !denied.contains(n))
        .collect()
}

pub async fn heartbeat(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let fail = |e: KafkaError, msg: String| {
        if e == KafkaError::InvalidRequest {
            tracing::warn!(group = %*req.group_id, peer = %ctx.peer, "ConsumerGroupHeartbeat: {msg}");
        }
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(sb(msg)))
    };
    let topics = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .map(|t| t.as_str());
    if let Err((e, msg)) =
        authz::group_heartbeat_allowed(ctx, "ConsumerGroupHeartbeat", &req.group_id, topics).await
    {
        return fail(e, msg);
    }
    // A group id has one type (Kafka: "Group g is not a consumer group.").
    if ctx.broker.groups.is_share_group(&req.group_id) {
        return fail(
            KafkaError::GroupIdNotFound,
            format!("Group {} is not a consumer group.", &*req.group_id),
        );
    }
    let sent_regex = req.subscribed_topic_regex.as_ref().map(|r| r.to_string());
    if let Some(r) = sent_regex.as_deref().filter(|r| !r.is_empty()) {
        if let Err(e) = compile_regex(r) {
            return fail(
                KafkaError::InvalidRegularExpression,
                format!("SubscribedTopicRegex `{r}` is not a valid regular expression: {e}"),
            );
        }
    }
    let member_id = if req.member_id.is_empty() && req.member_epoch == 0 {
        Uuid::new_v4().to_string()
    } else {
        req.member_id.to_string()
    };
    if member_id.is_empty() {
        return fail(KafkaError::InvalidRequest, "MemberId can't be empty".into());
    }
    // Resolved at every heartbeat of the member (the regex sent, else the one it has), so
    // topics created later join its subscription.
    let regex = match &sent_regex {
        Some(r) => (!r.is_empty()).then(|| r.clone()),
        None => ctx.broker.groups.member_regex(&req.group_id, &member_id),
    };
    let regex_matched = match regex {
        Some(r) => Some(regex_topics(ctx, &r).await),
        None => None,
    };
    let owned = req.topic_partitions.map(|tps| {
        let mut a = Assignment::new();
        for tp in tps {
            a.entry(tp.topic_id)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
        a.retain(|_, ps| !ps.is_empty());
        a
    });
    let params = HeartbeatParams {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|s| s.to_string()),
        rack_id: req.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed: req
            .subscribed_topic_names
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        regex: sent_regex,
        regex_matched,
        assignor: req.server_assignor.map(|s| s.to_string()),
        owned,
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    let broker = &ctx.broker;
    let topics = |name: &str| broker.topic(name).map(|t| (t.id, t.partition_count()));
    // The group's consumer.heartbeat.interval.ms (GROUP config, else Kafka's default).
    let interval = broker
        .groups
        .group_configs
        .effective(&req.group_id)
        .consumer_heartbeat_interval_ms;
    match broker
        .groups
        .consumer_heartbeat(&req.group_id, params, &topics)
    {
        Err((e, msg)) => fail(e, msg),
        Ok(out) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(out.member_id)))
            .with_member_epoch(out.epoch)
            .with_heartbeat_interval_ms(interval)
            .with_assignment(out.assignment.map(|a| {
                cgh::Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(t, ps)| {
                            cgh::TopicPartitions::default()
                                .with_topic_id(t)
                                .with_partitions(ps.into_iter().collect())
                        })
                        .collect(),
                )
            })),
    }
}

fn describe_assignment(ctx: &RequestContext, a: &Assignment) -> cgd::Assignment {
    cgd::Assignment::default().with_topic_partitions(
        a.iter()
            .map(|(t, ps)| {
                let name = ctx
                    .broker
                    .topic_by_id(t)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                cgd::TopicPartitions::default()
                    .with_topic_id(*t)
                    .with_topic_name(TopicName(sb(name)))
                    .with_partitions(ps.iter().copied().collect())
            })
            .collect(),
    )
}

pub async fn describe(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let version = header.request_api_version;
    let ids: Vec<&str> = req.group_ids.iter().map(|g| g.as_str()).collect();
    let decisions = authz::groups_with_operations(
        ctx,
        "ConsumerGroupDescribe",
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
            let described = ctx.broker.groups.with_consumer_group(&id, |g| {
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        let target = g.target.get(&m.id).cloned().unwrap_or_default();
                        let d = cgd::Member::default()
                            .with_member_id(sb(&m.id))
                            .with_instance_id(m.instance_id.clone().map(sb))
                            .with_rack_id(m.rack_id.clone().map(sb))
                            .with_member_epoch(m.epoch)
                            .with_client_id(sb(&m.client_id))
                            .with_client_host(sb(&m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed.iter().map(|t| TopicName(sb(t))).collect(),
                            )
                            .with_subscribed_topic_regex(m.regex.clone().map(sb))
                            .with_assignment(describe_assignment(ctx, &m.assigned))
                            .with_target_assignment(describe_assignment(ctx, &target));
                        if version >= 1 {
                            d.with_member_type(1)
                        } else {
                            d
                        }
                    })
                    .collect();
                base.clone()
                    .with_group_state(sb(g.state_name()))
                    .with_group_epoch(g.epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(sb(if g.assignor.is_empty() {
                        "uniform"
                    } else {
                        g.assignor.as_str()
                    }))
                    .with_members(members)
            });
            let mut g = match described {
                Ok(g) => g,
                Err(e) => base
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(format!(
                        "Group {} is not a consumer group.",
                        &*id
                    ))))
                    .with_group_state(sb("Dead")),
            };
            if req.include_authorized_operations {
                g.authorized_operations = operations;
            }
            g
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
