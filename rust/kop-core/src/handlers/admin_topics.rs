//! CreateTopics, DeleteTopics, CreatePartitions.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::*;

use super::configs::topic_entries;
use super::{authz, sb, RequestContext};
use crate::error::KafkaError;

type Failure = (KafkaError, String);

fn check_replication(
    ctx: &RequestContext,
    t: &create_topics_request::CreatableTopic,
) -> Result<(), Failure> {
    let node = ctx.broker.config.node_id;
    if t.replication_factor != -1 && t.replication_factor != 1 {
        return Err((
            KafkaError::InvalidReplicationFactor,
            format!(
                "replication factor {} is larger than the 1 available broker",
                t.replication_factor
            ),
        ));
    }
    if t.assignments
        .iter()
        .any(|a| a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.len() != 1)
    {
        return Err((
            KafkaError::InvalidReplicationFactor,
            format!("replicas must be exactly [{node}]"),
        ));
    }
    Ok(())
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
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            if !may_create.contains(t.name.as_str()) {
                return CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(KafkaError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(sb(KafkaError::TopicAuthorizationFailed.to_string())))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1);
            }
            let partitions = match (t.num_partitions, t.assignments.len()) {
                (-1, 0) => broker.config.num_partitions,
                (-1, n) => n as i32,
                (n, _) => n,
            };
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            let outcome = check_replication(ctx, &t).and_then(|()| {
                if req.validate_only {
                    broker
                        .check_new_topic(&t.name, partitions, &configs)
                        .map(|()| uuid::Uuid::nil())
                } else {
                    broker
                        .create_topic(&t.name, partitions, configs.clone())
                        .map(|topic| topic.id)
                }
            });
            let result = CreatableTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(id) => {
                    let mut r = result
                        .with_topic_id(id)
                        .with_num_partitions(partitions)
                        .with_replication_factor(1);
                    if version >= 5 {
                        r.configs = Some(
                            topic_entries(&configs, &broker.config)
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
                Err((e, msg)) => result
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(msg)))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
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
    let names: Vec<String> = wanted
        .iter()
        .filter_map(|(name, id)| match name {
            Some(n) => Some(n.to_string()),
            None => broker.topic_by_id(id).map(|t| t.name.clone()),
        })
        .collect();
    let denied = authz::denied(
        ctx,
        "DeleteTopics",
        authz::Operation::Delete,
        authz::ResourceType::Topic,
        names.iter().map(String::as_str),
    )
    .await;
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
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
            match resolved.and_then(|n| broker.delete_topic(&n).map(|id| (n, id))) {
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
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let broker = &ctx.broker;
    let denied = authz::denied(
        ctx,
        "CreatePartitions",
        authz::Operation::Alter,
        authz::ResourceType::Topic,
        req.topics.iter().map(|t| t.name.as_str()),
    )
    .await;
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let outcome = match broker.topic(&t.name) {
                _ if denied.contains(t.name.as_str()) => Err((
                    KafkaError::TopicAuthorizationFailed,
                    KafkaError::TopicAuthorizationFailed.to_string(),
                )),
                None => Err((
                    KafkaError::UnknownTopicOrPartition,
                    format!("topic {} does not exist", t.name.0.as_str()),
                )),
                Some(topic) if t.count <= topic.partition_count() => Err((
                    KafkaError::InvalidPartitions,
                    format!(
                        "topic has {} partitions; the count can only grow",
                        topic.partition_count()
                    ),
                )),
                Some(_) if req.validate_only => Ok(()),
                Some(_) => broker.add_partitions(&t.name, t.count),
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
    CreatePartitionsResponse::default().with_results(results)
}
