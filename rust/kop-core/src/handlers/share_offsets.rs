//! KIP-932's share-group offset admin: AlterShareGroupOffsets (`kafka-share-groups
//! --reset-offsets`) and DeleteShareGroupOffsets (`--delete-offsets`), answered as Kafka 4.4:
//! the group must be an empty share group, READ (alter) or DELETE (delete) on the group and
//! READ on each topic. Altering a share partition starts it afresh at the given offset (its
//! in-flight records are forgotten); deleting removes its state (it starts again at
//! `share.auto.offset.reset` when next assigned). DescribeShareGroupOffsets is in
//! `share_groups.rs`.

use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition as AlterPartition,
    AlterShareGroupOffsetsResponseTopic as AlterTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as DeleteTopic;
use kafka_protocol::messages::*;

use super::authz::{self, Operation, ResourceType};
use super::{sb, RequestContext};
use crate::error::KafkaError;
use crate::share::ShareKey;

const UNKNOWN_TOPIC: &str = "This server does not host this topic-partition.";
const TOPIC_DENIED: &str = "Topic authorization failed.";

/// The group is an empty share group (one with members here, or with a stored share-partition
/// state), else Kafka's top-level error and message.
fn empty_share_group(ctx: &RequestContext, group: &str) -> Result<(), (KafkaError, String)> {
    ctx.broker
        .groups
        .admit(group)
        .map_err(|e| (e, e.to_string()))?;
    let share = &ctx.broker.share;
    let known = ctx.broker.groups.is_share_group(group);
    if !known {
        let other = ctx.broker.groups.list().iter().any(|(id, ..)| id == group);
        let stored = share.states.stored(group).map_err(|e| (e, e.to_string()))?;
        if other || stored.is_empty() {
            let msg = if other {
                format!("Group {group} is not a share group.")
            } else {
                format!("Group {group} not found.")
            };
            return Err((KafkaError::GroupIdNotFound, msg));
        }
    }
    if ctx.broker.groups.share_group_has_members(group) {
        return Err((KafkaError::NonEmptyGroup, "The group is not empty.".into()));
    }
    Ok(())
}

pub async fn alter_offsets(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let fail = |e: KafkaError, msg: String| {
        AlterShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(sb(msg)))
    };
    let group = req.group_id.as_str();
    if !authz::group_allowed(ctx, "AlterShareGroupOffsets", Operation::Read, group).await {
        return fail(
            KafkaError::GroupAuthorizationFailed,
            "Group authorization failed.".into(),
        );
    }
    if let Err((e, msg)) = empty_share_group(ctx, group) {
        return fail(e, msg);
    }
    let denied = authz::denied(
        ctx,
        "AlterShareGroupOffsets",
        Operation::Read,
        ResourceType::Topic,
        req.topics.iter().map(|t| t.topic_name.as_str()),
    )
    .await;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.topic_name.to_string();
        let topic = ctx.broker.topic(&name);
        let topic_err = if denied.contains(&name) {
            Some((KafkaError::TopicAuthorizationFailed, TOPIC_DENIED))
        } else if topic.is_none() {
            Some((KafkaError::UnknownTopicOrPartition, UNKNOWN_TOPIC))
        } else {
            None
        };
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let out = AlterPartition::default().with_partition_index(p.partition_index);
            let result = match (&topic, topic_err) {
                (_, Some(err)) => Err(err),
                (Some(topic), None) if topic.partition(p.partition_index).is_some() => {
                    let key = ShareKey {
                        group: group.to_string(),
                        topic_id: topic.id,
                        partition: p.partition_index,
                    };
                    ctx.broker
                        .share
                        .states
                        .reset(&key, Some(p.start_offset))
                        .map_err(|e| (e, "The coordinator is not available."))
                }
                _ => Err((KafkaError::UnknownTopicOrPartition, UNKNOWN_TOPIC)),
            };
            partitions.push(match result {
                Ok(()) => out,
                Err((e, msg)) => out
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(msg))),
            });
        }
        topics.push(
            AlterTopic::default()
                .with_topic_name(t.topic_name)
                .with_topic_id(topic.map(|t| t.id).unwrap_or_default())
                .with_partitions(partitions),
        );
    }
    AlterShareGroupOffsetsResponse::default().with_responses(topics)
}

pub async fn delete_offsets(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    let fail = |e: KafkaError, msg: String| {
        DeleteShareGroupOffsetsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(sb(msg)))
    };
    let group = req.group_id.as_str();
    if !authz::group_allowed(ctx, "DeleteShareGroupOffsets", Operation::Delete, group).await {
        return fail(
            KafkaError::GroupAuthorizationFailed,
            "Group authorization failed.".into(),
        );
    }
    if let Err((e, msg)) = empty_share_group(ctx, group) {
        return fail(e, msg);
    }
    let stored = match ctx.broker.share.states.stored(group) {
        Ok(s) => s,
        Err(e) => return fail(e, e.to_string()),
    };
    let denied = authz::denied(
        ctx,
        "DeleteShareGroupOffsets",
        Operation::Read,
        ResourceType::Topic,
        req.topics.iter().map(|t| t.topic_name.as_str()),
    )
    .await;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.topic_name.to_string();
        let out = DeleteTopic::default().with_topic_name(t.topic_name);
        let topic = ctx.broker.topic(&name);
        let result = match topic {
            _ if denied.contains(&name) => {
                Err((KafkaError::TopicAuthorizationFailed, TOPIC_DENIED))
            }
            None => Err((KafkaError::UnknownTopicOrPartition, UNKNOWN_TOPIC)),
            Some(topic) => {
                let held: Vec<i32> = stored
                    .iter()
                    .filter(|(id, _)| *id == topic.id)
                    .map(|(_, p)| *p)
                    .collect();
                if held.is_empty() {
                    Err((
                        KafkaError::UnknownTopicOrPartition,
                        "There is no offset information to delete.",
                    ))
                } else {
                    let deleted = held.into_iter().try_for_each(|partition| {
                        let key = ShareKey {
                            group: group.to_string(),
                            topic_id: topic.id,
                            partition,
                        };
                        ctx.broker.share.states.reset(&key, None)
                    });
                    deleted
                        .map(|()| topic.id)
                        .map_err(|e| (e, "The coordinator is not available."))
                }
            }
        };
        topics.push(match result {
            Ok(id) => out.with_topic_id(id),
            Err((e, msg)) => out
                .with_error_code(e.code())
                .with_error_message(Some(sb(msg))),
        });
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(topics)
}
