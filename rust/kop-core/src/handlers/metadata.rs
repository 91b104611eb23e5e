//! Metadata and DescribeCluster: the live kop instances (one, unless several share a Pulsar
//! namespace) and the leader of every partition (`broker::leadership`).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;

use super::{authz, sb, RequestContext};
use crate::broker::partition::LEADER_EPOCH;
use crate::broker::{is_internal, valid_topic_name, Topic};
use crate::error::KafkaError;

fn describe_topic(
    ctx: &RequestContext,
    topic: &Topic,
    operations: Option<i32>,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions()
        .iter()
        .map(|p| {
            let node = ctx.broker.cluster.leader(&topic.name, p.index);
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
        })
        .collect();
    let mut t = MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(&topic.name))))
        .with_topic_id(topic.id)
        .with_is_internal(is_internal(&topic.name))
        .with_partitions(partitions);
    if let Some(bits) = operations {
        t.topic_authorized_operations = bits;
    }
    t
}

/// Kafka's internal topics (`offsets.topic.num.partitions`,
/// `transaction.state.log.num.partitions`: 50 each), flagged in `Broker::internal_topics_used`
/// in this order.
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];
const INTERNAL_PARTITIONS: i32 = 50;

/// The internal topic is used (a coordinator of its kind was looked up).
pub fn mark_internal_used(ctx: &RequestContext, name: &str) {
    if let Some(i) = INTERNAL_TOPICS.iter().position(|t| *t == name) {
        ctx.broker.internal_topics_used[i].store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn internal_used(ctx: &RequestContext, i: usize) -> bool {
    ctx.broker.internal_topics_used[i].load(std::sync::atomic::Ordering::Relaxed)
}

/// A stable id for an internal topic of this cluster (FNV-1a of cluster id and name).
fn internal_topic_id(cluster_id: &str, name: &str) -> uuid::Uuid {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in cluster_id.bytes().chain([0]).chain(name.bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    uuid::Uuid::from_u128(h)
}

/// An internal topic as Kafka shows it: its partitions are the group (and transaction)
/// coordinator shards, each led by the instance coordinating it.
fn describe_internal(
    ctx: &RequestContext,
    name: &str,
    operations: Option<i32>,
) -> MetadataResponseTopic {
    let shards = ctx.broker.groups.shard_count().max(1);
    let partitions = (0..INTERNAL_PARTITIONS)
        .map(|p| {
            let node = ctx.broker.cluster.group_coordinator(p as usize % shards);
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
        })
        .collect();
    let mut t = MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(name))))
        .with_topic_id(internal_topic_id(&ctx.broker.cluster_id, name))
        .with_is_internal(true)
        .with_partitions(partitions);
    if let Some(bits) = operations {
        t.topic_authorized_operations = bits;
    }
    t
}

fn topic_error(name: Option<&str>, id: uuid::Uuid, err: KafkaError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(err.code())
        .with_name(name.map(|n| TopicName(sb(n))))
        .with_topic_id(id)
}

pub async fn handle(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    let broker = &ctx.broker;
    let with_ops = version >= 8 && req.include_topic_authorized_operations;
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    // Before v4 there was no flag and auto-creation was always requested.
    let auto_create = version < 4 || req.allow_auto_topic_creation;
    // DESCRIBE on each topic (unauthorized ones are hidden from an all-topics listing);
    // auto-creation also needs CREATE on the cluster or the topic. With
    // include_*_authorized_operations, every operation of each topic (and of the cluster) is
    // probed in the same batch.
    let listed = if all { broker.topics() } else { Vec::new() };
    // Internal topics in an all-topics listing once used, as on Kafka (unless a data topic of
    // that name was stored by an older kop).
    let internal_listed: Vec<&str> = if all {
        (0..INTERNAL_TOPICS.len())
            .filter(|&i| internal_used(ctx, i) && broker.topic(INTERNAL_TOPICS[i]).is_none())
            .map(|i| INTERNAL_TOPICS[i])
            .collect()
    } else {
        Vec::new()
    };
    let with_cluster_ops = (8..=10).contains(&version) && req.include_cluster_authorized_operations;
    let mut actions = authz::Actions::default();
    if !authz::allow_all(ctx) {
        // Like Kafka, a denial that only hides a topic from an all-topics listing is not
        // logged; one for a topic asked by name is.
        let ask_topic = |actions: &mut authz::Actions, name: &str| {
            if all {
                actions.probe(
                    &[authz::Operation::Describe],
                    authz::ResourceType::Topic,
                    name,
                );
            } else {
                actions.require(authz::Operation::Describe, authz::ResourceType::Topic, name);
            }
            if with_ops {
                actions.probe(&authz::TOPIC_OPERATIONS, authz::ResourceType::Topic, name);
            }
        };
        for t in &listed {
            ask_topic(&mut actions, &t.name);
        }
        for name in &internal_listed {
            ask_topic(&mut actions, name);
        }
        let mut any_missing = false;
        for wanted in req.topics.iter().flatten() {
            let name = match (&wanted.name, wanted.topic_id) {
                (Some(n), _) => n.to_string(),
                (None, id) => match broker.topic_by_id(&id) {
                    Some(t) => t.name.clone(),
                    None => continue,
                },
            };
            if auto_create && broker.topic(&name).is_none() && !is_internal(&name) {
                any_missing = true;
                actions.require(authz::Operation::Create, authz::ResourceType::Topic, &name);
            }
            ask_topic(&mut actions, &name);
        }
        if any_missing {
            actions.require(
                authz::Operation::Create,
                authz::ResourceType::Cluster,
                authz::CLUSTER_NAME,
            );
        }
        if with_cluster_ops {
            actions.probe(
                &authz::CLUSTER_OPERATIONS,
                authz::ResourceType::Cluster,
                authz::CLUSTER_NAME,
            );
        }
    }
    let decisions = actions.decide(ctx, "Metadata").await;
    let may_describe = |name: &str| {
        decisions.allowed(authz::Operation::Describe, authz::ResourceType::Topic, name)
    };
    let may_create = |name: &str| {
        decisions.allowed(
            authz::Operation::Create,
            authz::ResourceType::Cluster,
            authz::CLUSTER_NAME,
        ) || decisions.allowed(authz::Operation::Create, authz::ResourceType::Topic, name)
    };
    let topic_ops = |name: &str| {
        with_ops.then(|| {
            decisions.operations(&authz::TOPIC_OPERATIONS, authz::ResourceType::Topic, name)
        })
    };
    let topics = if all {
        let internal = internal_listed
            .iter()
            .filter(|n| may_describe(n))
            .map(|n| describe_internal(ctx, n, topic_ops(n)));
        listed
            .iter()
            .filter(|t| may_describe(&t.name))
            .map(|t| describe_topic(ctx, t, topic_ops(&t.name)))
            .chain(internal)
            .collect()
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|wanted| match (&wanted.name, wanted.topic_id) {
                (Some(name), _) => {
                    let name: &str = name;
                    if !valid_topic_name(name) {
                        return topic_error(
                            Some(name),
                            uuid::Uuid::nil(),
                            KafkaError::InvalidTopic,
                        );
                    }
                    if !may_describe(name) {
                        return topic_error(
                            Some(name),
                            uuid::Uuid::nil(),
                            KafkaError::TopicAuthorizationFailed,
                        );
                    }
                    let found = match broker.topic(name) {
                        Some(t) => Ok(t),
                        None if is_internal(name) => {
                            mark_internal_used(ctx, name);
                            return describe_internal(ctx, name, topic_ops(name));
                        }
                        None if auto_create && !may_create(name) => {
                            Err(KafkaError::TopicAuthorizationFailed)
                        }
                        None if auto_create => broker.auto_create(name),
                        None => Err(KafkaError::UnknownTopicOrPartition),
                    };
                    match found {
                        Ok(t) => describe_topic(ctx, &t, topic_ops(&t.name)),
                        Err(e) => topic_error(Some(name), uuid::Uuid::nil(), e),
                    }
                }
                (None, id) => match broker.topic_by_id(&id) {
                    Some(t) if !may_describe(&t.name) => {
                        topic_error(None, id, KafkaError::TopicAuthorizationFailed)
                    }
                    Some(t) => describe_topic(ctx, &t, topic_ops(&t.name)),
                    None => topic_error(None, id, KafkaError::UnknownTopicId),
                },
            })
            .collect()
    };
    let brokers = live_endpoints(ctx)
        .into_iter()
        .map(|(node, host, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node))
                .with_host(sb(&host))
                .with_port(port)
        })
        .collect();
    let mut resp = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(sb(&broker.cluster_id)))
        .with_controller_id(BrokerId(broker.cluster.controller()))
        .with_topics(topics);
    if with_cluster_ops {
        resp.cluster_authorized_operations = decisions.operations(
            &authz::CLUSTER_OPERATIONS,
            authz::ResourceType::Cluster,
            authz::CLUSTER_NAME,
        );
    }
    resp
}

pub async fn describe_cluster(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = &ctx.broker;
    let mut actions = authz::Actions::default();
    let cluster = (authz::ResourceType::Cluster, authz::CLUSTER_NAME);
    actions.require(authz::Operation::Describe, cluster.0, cluster.1);
    if req.include_cluster_authorized_operations {
        actions.probe(&authz::CLUSTER_OPERATIONS, cluster.0, cluster.1);
    }
    let decisions = actions.decide(ctx, "DescribeCluster").await;
    if !decisions.allowed(authz::Operation::Describe, cluster.0, cluster.1) {
        return DescribeClusterResponse::default()
            .with_error_code(KafkaError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb(KafkaError::ClusterAuthorizationFailed.to_string())));
    }
    // endpoint_type 1 = brokers; 2 = controllers (kop is both, at the same address).
    let brokers = live_endpoints(ctx)
        .into_iter()
        .map(|(node, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(node))
                .with_host(sb(&host))
                .with_port(port)
        })
        .collect();
    let mut resp = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type.max(1))
        .with_cluster_id(sb(&broker.cluster_id))
        .with_controller_id(BrokerId(broker.cluster.controller()))
        .with_brokers(brokers);
    if req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations =
            decisions.operations(&authz::CLUSTER_OPERATIONS, cluster.0, cluster.1);
    }
    resp
}

/// (node id, host, port) of every live instance on the request's listener; this instance as
/// the request reached it.
fn live_endpoints(ctx: &RequestContext) -> Vec<(i32, String, i32)> {
    let me = ctx.broker.cluster.node_id();
    ctx.broker
        .cluster
        .members()
        .iter()
        .filter_map(|m| {
            if m.node_id == me {
                let l = &ctx.listener;
                return Some((me, l.advertised_host.clone(), l.advertised_port));
            }
            let e = m.endpoint(&ctx.listener.name)?;
            Some((m.node_id, e.host.clone(), e.port))
        })
        .collect()
}

#[cfg(test)]
#[path = "metadata_tests.rs"]
mod tests;
