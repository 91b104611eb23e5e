//! Replica management: ElectLeaders, ListPartitionReassignments and
//! AlterPartitionReassignments (`kafka-leader-election`, `kafka-reassign-partitions`,
//! `Admin.electLeaders` / `listPartitionReassignments` / `alterPartitionReassignments`).
//!
//! Every kop partition has one replica, on the instance that leads it (`broker::cluster`): its
//! preferred leader always leads, no reassignment is ever in progress, and the only assignment
//! a partition accepts is the one it has. The answers are Kafka 4.4's for such a cluster.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{authz, sb, RequestContext};
use crate::error::KafkaError;

const CLUSTER_DENIED: &str = "Cluster authorization failed.";
/// ElectLeaders' election types (Kafka's `ElectionType`).
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

fn partition_result(partition: i32, result: Result<(), (KafkaError, String)>) -> PartitionResult {
    let (code, message) = match result {
        Ok(()) => (0, None),
        Err((err, message)) => (err.code(), Some(sb(message))),
    };
    PartitionResult::default()
        .with_partition_id(partition)
        .with_error_code(code)
        .with_error_message(message)
}

/// Why `partition` of `topic` needs no election, or that it does not exist.
fn elect(ctx: &RequestContext, topic: &str, partition: i32) -> (KafkaError, String) {
    match ctx.broker.topic(topic) {
        None => (
            KafkaError::UnknownTopicOrPartition,
            format!("No such topic as {topic}"),
        ),
        Some(t) if t.partition(partition).is_none() => (
            KafkaError::UnknownTopicOrPartition,
            format!("No such partition as {topic}-{partition}"),
        ),
        Some(_) => (
            KafkaError::ElectionNotNeeded,
            "Leader election not needed for topic partition.".into(),
        ),
    }
}

pub async fn elect_leaders(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let refusal = if !authz::cluster_allowed(ctx, "ElectLeaders", authz::Operation::Alter).await {
        Some((
            KafkaError::ClusterAuthorizationFailed,
            CLUSTER_DENIED.to_string(),
        ))
    } else if !matches!(req.election_type, PREFERRED | UNCLEAN) {
        Some((
            KafkaError::InvalidRequest,
            format!("Unknown election type {}", req.election_type),
        ))
    } else {
        None
    };
    if let Some((err, message)) = refusal {
        // Kafka's error response: the error at the top and on every partition asked.
        let results = req
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(
                        t.partitions
                            .iter()
                            .map(|&p| partition_result(p, Err((err, message.clone()))))
                            .collect(),
                    )
            })
            .collect();
        return ElectLeadersResponse::default()
            .with_error_code(err.code())
            .with_replica_election_results(results);
    }
    let results = match req.topic_partitions {
        // All partitions: Kafka lists every topic but leaves out the partitions that need no
        // election, which here is all of them.
        None => ctx
            .broker
            .topics()
            .iter()
            .map(|t| ReplicaElectionResult::default().with_topic(TopicName(sb(&t.name))))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| {
                let results = t
                    .partitions
                    .iter()
                    .map(|&p| partition_result(p, Err(elect(ctx, &t.topic, p))))
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(results)
            })
            .collect(),
    };
    ElectLeadersResponse::default().with_replica_election_results(results)
}

pub async fn list_partition_reassignments(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let allowed = authz::cluster_allowed(
        ctx,
        "ListPartitionReassignments",
        authz::Operation::Describe,
    )
    .await;
    if !allowed {
        // Kafka's error response names the partitions asked.
        let topics = req
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                OngoingTopicReassignment::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|&p| {
                                OngoingPartitionReassignment::default().with_partition_index(p)
                            })
                            .collect(),
                    )
            })
            .collect();
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(KafkaError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb(CLUSTER_DENIED)))
            .with_topics(topics);
    }
    // No reassignment is ever in progress.
    ListPartitionReassignmentsResponse::default()
}

/// Whether `replicas` may become the assignment of `partition` of `topic` (Kafka's checks of a
/// manual assignment, then kop's one rule: the partition stays where it is).
fn check_reassignment(
    ctx: &RequestContext,
    topic: &str,
    partition: i32,
    replicas: Option<&[BrokerId]>,
    allow_replication_factor_change: bool,
) -> Result<(), (KafkaError, String)> {
    let t = ctx.broker.topic(topic).ok_or_else(|| {
        (
            KafkaError::UnknownTopicOrPartition,
            format!("Unable to find a topic named {topic}."),
        )
    })?;
    if t.partition(partition).is_none() {
        return Err((
            KafkaError::UnknownTopicOrPartition,
            format!("Unable to find partition {topic}:{partition}."),
        ));
    }
    let Some(replicas) = replicas else {
        return Err((
            KafkaError::NoReassignmentInProgress,
            "No partition reassignment is in progress for the topic partition.".into(),
        ));
    };
    if replicas.is_empty() {
        return Err((
            KafkaError::InvalidReplicaAssignment,
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let members = ctx.broker.cluster.members();
    let mut sorted: Vec<i32> = replicas.iter().map(|b| b.0).collect();
    sorted.sort_unstable();
    for (i, &node) in sorted.iter().enumerate() {
        if !members.iter().any(|m| m.node_id == node) {
            return Err((
                KafkaError::InvalidReplicaAssignment,
                format!(
                    "The manual partition assignment includes broker {node}, but no such broker is registered."
                ),
            ));
        }
        if i > 0 && sorted[i - 1] == node {
            return Err((
                KafkaError::InvalidReplicaAssignment,
                format!(
                    "The manual partition assignment includes the broker {node} more than once."
                ),
            ));
        }
    }
    if !allow_replication_factor_change && sorted.len() != 1 {
        return Err((
            KafkaError::InvalidReplicationFactor,
            format!(
                "The replication factor is changed from 1 to {} but allowReplicationFactorChange is false",
                sorted.len()
            ),
        ));
    }
    let leader = ctx.broker.cluster.leader(topic, partition);
    if sorted != [leader] {
        return Err((
            KafkaError::InvalidReplicaAssignment,
            format!(
                "kop keeps one replica of each partition, on the instance that leads it ({leader}); it cannot be reassigned."
            ),
        ));
    }
    Ok(())
}

pub async fn alter_partition_reassignments(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let allowed =
        authz::cluster_allowed(ctx, "AlterPartitionReassignments", authz::Operation::Alter).await;
    // (v0 has no flag; it decodes as true: the replication factor may change.)
    let allow_rf_change = req.allow_replication_factor_change;
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = if allowed {
                        check_reassignment(
                            ctx,
                            &t.name,
                            p.partition_index,
                            p.replicas.as_deref(),
                            allow_rf_change,
                        )
                    } else {
                        Err((
                            KafkaError::ClusterAuthorizationFailed,
                            CLUSTER_DENIED.into(),
                        ))
                    };
                    let (code, message) = match result {
                        Ok(()) => (0, None),
                        Err((err, message)) => (err.code(), Some(StrBytes::from(message))),
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(message)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    let mut resp = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_responses(responses);
    if !allowed {
        resp = resp
            .with_error_code(KafkaError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb(CLUSTER_DENIED)));
    }
    resp
}
