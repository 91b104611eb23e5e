//! CreateTopics, DeleteTopics, CreatePartitions.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;

use super::configs::topic_entries;
use super::mutation_quota::MutationQuota;
use super::{authz, sb, RequestContext};
use crate::error::KafkaError;

type Failure = (KafkaError, String);

/// KRaft's own log: no client may create it (Kafka answers INVALID_REQUEST).
const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Kafka's checks of a new topic's shape, in its order: a manual assignment excludes a
/// replication factor and a partition count; each partition is placed exactly once, on live
/// brokers (here: this one, since kop keeps one replica), the partitions numbered 0..n.
/// Returns the partition count.
fn check_shape(
    ctx: &RequestContext,
    t: &create_topics_request::CreatableTopic,
) -> Result<i32, Failure> {
    let node = ctx.broker.config.node_id;
    if t.assignments.is_empty() {
        if t.replication_factor < -1 || t.replication_factor == 0 {
            return Err((
                KafkaError::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.".into(),
            ));
        }
        if t.num_partitions < -1 || t.num_partitions == 0 {
            return Err((
                KafkaError::InvalidPartitions,
                "Number of partitions was set to an invalid non-positive value.".into(),
            ));
        }
        if t.replication_factor > 1 {
            return Err((
                KafkaError::InvalidReplicationFactor,
                format!(
                    "Unable to replicate the partition {} time(s): only 1 broker is registered",
                    t.replication_factor
                ),
            ));
        }
        return Ok(if t.num_partitions == -1 {
            ctx.broker.config.num_partitions
        } else {
            t.num_partitions
        });
    }
    for (field, value) in [
        ("replication factor", i32::from(t.replication_factor)),
        ("numPartitions", t.num_partitions),
    ] {
        if value != -1 {
            return Err((
                KafkaError::InvalidRequest,
                format!(
                    "A manual partition assignment was specified, but {field} was not set to -1."
                ),
            ));
        }
    }
    let mut placed = std::collections::HashSet::new();
    for a in &t.assignments {
        if !placed.insert(a.partition_index) {
            return Err((
                KafkaError::InvalidReplicaAssignment,
                format!(
                    "Found multiple manual partition assignments for partition {}",
                    a.partition_index
                ),
            ));
        }
        check_replicas(node, &a.broker_ids)?;
    }
    let count = t.assignments.len() as i32;
    if (0..count).any(|i| !placed.contains(&i)) {
        return Err((
            KafkaError::InvalidReplicaAssignment,
            "partitions should be a consecutive 0-based integer sequence".into(),
        ));
    }
    Ok(count)
}

/// A manually assigned replica list: this broker, once (kop keeps one replica, led here).
fn check_replicas(node: i32, replicas: &[BrokerId]) -> Result<(), Failure> {
    match replicas {
        [] => Err((
            KafkaError::InvalidReplicaAssignment,
            "The manual partition assignment includes an empty replica list.".into(),
        )),
        [only] if only.0 == node => Ok(()),
        _ => Err((
            KafkaError::InvalidReplicaAssignment,
            format!(
                "The manual partition assignment must be exactly [{node}]: kop keeps one replica"
            ),
        )),
    }
}

/// Names listed more than once in one request: Kafka answers each once, with INVALID_REQUEST,
/// and acts on none of them.
fn duplicates<'a>(names: impl IntoIterator<Item = &'a str>) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    names
        .into_iter()
        .filter(|n| !seen.insert(*n))
        .map(str::to_string)
        .collect()
}

/// Keeps the first item of each key (the later ones are answered by the first); items
/// without a key are all kept.
fn first_of_each<T>(items: Vec<T>, key: impl Fn(&T) -> Option<String>) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|t| key(t).is_none_or(|k| seen.insert(k)))
        .collect()
}

pub async fn create_topics(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let version = header.request_api_version;
    let broker = &ctx.broker;
    // CREATE on the cluster, or on each topic.
    let mut actions = vec![(
        authz::Operation::Create,
        authz::ResourceType::Cluster,
        authz::CLUSTER_NAME,
    )];
    actions.extend(req.topics.iter().map(|t| {
        (
            authz::Operation::Create,
            authz::ResourceType::Topic,
            t.name.as_str(),
        )
    }));
    let decisions = authz::authorize(ctx, "CreateTopics", &actions).await;
    let may_create: std::collections::HashSet<String> = actions
        .iter()
        .zip(&decisions)
        .skip(1)
        .filter(|(_, ok)| decisions[0] || **ok)
        .map(|((_, _, n), _)| n.to_string())
        .collect();
    let duplicated = duplicates(req.topics.iter().map(|t| t.name.as_str()));
    let quota = MutationQuota::new(ctx, header, 6);
    let failed = |name: TopicName, e: KafkaError, msg: String| {
        CreatableTopicResult::default()
            .with_name(name)
            .with_error_code(e.code())
            .with_error_message(Some(sb(msg)))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
    };
    let topics = first_of_each(req.topics, |t| Some(t.name.to_string()))
        .into_iter()
        .map(|t| {
            if duplicated.contains(t.name.as_str()) {
                return failed(
                    t.name,
                    KafkaError::InvalidRequest,
                    "Duplicate topic name.".into(),
                );
            }
            if t.name.as_str() == CLUSTER_METADATA_TOPIC {
                let msg =
                    format!("Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited.");
                return failed(t.name, KafkaError::InvalidRequest, msg);
            }
            if !may_create.contains(t.name.as_str()) {
                let e = KafkaError::TopicAuthorizationFailed;
                return failed(t.name, e, e.to_string());
            }
            let nulls: Vec<&str> = t
                .configs
                .iter()
                .filter(|c| c.value.is_none())
                .map(|c| c.name.as_str())
                .collect();
            if !nulls.is_empty() {
                let msg = format!(
                    "Null value not supported for topic configs: {}",
                    nulls.join(",")
                );
                return failed(t.name, KafkaError::InvalidConfig, msg);
            }
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            // Kafka's order: the name, then existence and configs, then the shape.
            let outcome = broker
                .check_new_topic(&t.name, 1, &configs)
                .and_then(|()| check_shape(ctx, &t))
                .and_then(|partitions| {
                    let id = if req.validate_only {
                        broker
                            .check_new_topic(&t.name, partitions, &configs)
                            .map(|()| uuid::Uuid::nil())
                    } else {
                        quota.check().and_then(|()| {
                            let topic =
                                broker.create_topic(&t.name, partitions, configs.clone())?;
                            quota.record(partitions);
                            Ok(topic.id)
                        })
                    };
                    id.map(|id| (id, partitions))
                });
            match outcome {
                Ok((id, partitions)) => {
                    let mut r = CreatableTopicResult::default()
                        .with_name(t.name)
                        .with_topic_id(id)
                        .with_num_partitions(partitions)
                        .with_replication_factor(1);
                    if version >= 5 {
                        r.configs = Some(
                            topic_entries(&configs, broker)
                                .into_iter()
                                .map(|e| {
                                    CreatableTopicConfigs::default()
                                        .with_name(sb(e.name))
                                        .with_value(Some(sb(e.value)))
                                        .with_config_source(e.source)
                                        .with_read_only(e.read_only)
                                })
                                .collect(),
                        );
                    }
                    r
                }
                Err((e, msg)) => failed(t.name, e, msg),
            }
        })
        .collect();
    CreateTopicsResponse::default()
        .with_topics(topics)
        .with_throttle_time_ms(quota.finish())
}

pub async fn delete_topics(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let version = header.request_api_version;
    let broker = &ctx.broker;
    // v6 names topics by name or id in `topics`; earlier versions list names.
    let wanted: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    // Kafka's request checks: a name or an id, not both, and each at most once.
    let duplicate_names = duplicates(
        wanted
            .iter()
            .filter(|(_, id)| id.is_nil())
            .filter_map(|(n, _)| n.as_ref().map(|n| n.as_str())),
    );
    let ids: Vec<String> = wanted
        .iter()
        .filter(|(n, id)| n.is_none() && !id.is_nil())
        .map(|(_, id)| id.to_string())
        .collect();
    let duplicate_ids = duplicates(ids.iter().map(String::as_str));
    let invalid = |name: &Option<TopicName>, id: &uuid::Uuid| -> Option<&'static str> {
        match name {
            Some(_) if !id.is_nil() => Some("You may not specify both topic name and topic id."),
            Some(n) if duplicate_names.contains(n.as_str()) => Some("Duplicate topic name."),
            Some(_) => None,
            None if id.is_nil() => Some("Neither topic name nor id were specified."),
            None if duplicate_ids.contains(&id.to_string()) => Some("Duplicate topic id."),
            None => None,
        }
    };
    let wanted = first_of_each(wanted, |(name, id)| match name {
        Some(n) if id.is_nil() => Some(format!("name {}", n.as_str())),
        None if !id.is_nil() => Some(format!("id {id}")),
        _ => None,
    });
    let names: Vec<String> = wanted
        .iter()
        .filter(|(name, id)| invalid(name, id).is_none())
        .filter_map(|(name, id)| match name {
            Some(n) => Some(n.to_string()),
            None => broker.topic_by_id(id).map(|t| t.name.clone()),
        })
        .collect();
    // DELETE on the cluster, or on each topic (as Kafka; the cluster check is not logged).
    let denied: std::collections::HashSet<String> = if authz::allow_all(ctx) {
        Default::default()
    } else {
        let mut unique: Vec<&str> = names.iter().map(String::as_str).collect();
        unique.sort_unstable();
        unique.dedup();
        let mut actions = vec![(
            authz::Operation::Delete,
            authz::ResourceType::Cluster,
            authz::CLUSTER_NAME,
        )];
        actions.extend(
            unique
                .iter()
                .map(|n| (authz::Operation::Delete, authz::ResourceType::Topic, *n)),
        );
        let decisions = authz::decide(ctx, "DeleteTopics", &actions, |i| i > 0).await;
        unique
            .iter()
            .zip(decisions.iter().skip(1))
            .filter(|(_, ok)| !decisions[0] && !**ok)
            .map(|(n, _)| n.to_string())
            .collect()
    };
    let quota = MutationQuota::new(ctx, header, 5);
    let delete = |n: &TopicName| -> Result<uuid::Uuid, KafkaError> {
        quota.check().map_err(|(e, _)| e)?;
        let partitions = broker.topic(n).map_or(0, |t| t.partition_count());
        let id = broker.delete_topic(n)?;
        quota.record(partitions);
        Ok(id)
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            if let Some(why) = invalid(&name, &id) {
                let mut r = DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_error_code(KafkaError::InvalidRequest.code());
                if version >= 5 {
                    r.error_message = Some(sb(why));
                }
                return r;
            }
            let resolved = match &name {
                Some(n) => Ok(n.clone()),
                None => broker
                    .topic_by_id(&id)
                    .map(|t| TopicName(sb(&t.name)))
                    .ok_or(KafkaError::UnknownTopicId),
            };
            let resolved = resolved.and_then(|n| {
                if denied.contains(n.as_str()) {
                    Err(KafkaError::TopicAuthorizationFailed)
                } else {
                    Ok(n)
                }
            });
            match resolved.and_then(|n| delete(&n).map(|id| (n, id))) {
                Ok((n, id)) => DeletableTopicResult::default()
                    .with_name(Some(n))
                    .with_topic_id(id),
                Err(e) => {
                    // Echo the topic as asked; error_message exists from v5.
                    let mut r = DeletableTopicResult::default()
                        .with_name(name)
                        .with_topic_id(id)
                        .with_error_code(e.code());
                    if version >= 5 {
                        r.error_message = Some(sb(e.to_string()));
                    }
                    r
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(quota.finish())
}

pub async fn create_partitions(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let broker = &ctx.broker;
    let quota = MutationQuota::new(ctx, header, 3);
    let denied = authz::denied(
        ctx,
        "CreatePartitions",
        authz::Operation::Alter,
        authz::ResourceType::Topic,
        req.topics.iter().map(|t| t.name.as_str()),
    )
    .await;
    let duplicated = duplicates(req.topics.iter().map(|t| t.name.as_str()));
    let node = broker.config.node_id;
    let results = first_of_each(req.topics, |t| Some(t.name.to_string()))
        .into_iter()
        .map(|t| {
            let outcome = match broker.topic(&t.name) {
                _ if duplicated.contains(t.name.as_str()) => {
                    Err((KafkaError::InvalidRequest, "Duplicate topic name.".into()))
                }
                _ if denied.contains(t.name.as_str()) => Err((
                    KafkaError::TopicAuthorizationFailed,
                    KafkaError::TopicAuthorizationFailed.to_string(),
                )),
                None => Err((
                    KafkaError::UnknownTopicOrPartition,
                    format!("topic {} does not exist", t.name.0.as_str()),
                )),
                Some(topic) if t.count == topic.partition_count() => Err((
                    KafkaError::InvalidPartitions,
                    format!(
                        "Topic already has {} partition(s).",
                        topic.partition_count()
                    ),
                )),
                Some(topic) if t.count < topic.partition_count() => Err((
                    KafkaError::InvalidPartitions,
                    format!(
                        "The topic {} currently has {} partition(s); {} would not be an increase.",
                        t.name.0.as_str(),
                        topic.partition_count(),
                        t.count
                    ),
                )),
                Some(topic) => {
                    check_new_assignments(node, &t, topic.partition_count()).and_then(|()| {
                        if req.validate_only {
                            Ok(())
                        } else {
                            quota.check()?;
                            let before = topic.partition_count();
                            broker.add_partitions(&t.name, t.count)?;
                            quota.record(t.count - before);
                            Ok(())
                        }
                    })
                }
            };
            let r = CreatePartitionsTopicResult::default().with_name(t.name);
            match outcome {
                Ok(()) => r,
                Err((e, msg)) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(msg))),
            }
        })
        .collect();
    CreatePartitionsResponse::default()
        .with_results(results)
        .with_throttle_time_ms(quota.finish())
}

/// The assignments of a CreatePartitions topic, if given: one per new partition, each on
/// this broker only (as the existing partitions).
fn check_new_assignments(
    node: i32,
    t: &create_partitions_request::CreatePartitionsTopic,
    current: i32,
) -> Result<(), Failure> {
    let Some(assignments) = &t.assignments else {
        return Ok(());
    };
    let additional = t.count - current;
    if assignments.len() as i32 != additional {
        return Err((
            KafkaError::InvalidReplicaAssignment,
            format!(
                "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                assignments.len()
            ),
        ));
    }
    assignments
        .iter()
        .try_for_each(|a| check_replicas(node, &a.broker_ids))
}

#[cfg(test)]
#[path = "admin_topics_tests.rs"]
mod tests;
