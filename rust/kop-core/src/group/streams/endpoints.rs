//! Interactive Queries (KIP-1071's PartitionsByUserEndpoint): every member with an
//! `application.server` endpoint and the partitions of the tasks it holds, so that each Kafka
//! Streams instance can answer `metadataForAllStreamsClients()` / `queryMetadataForKey`.
//! As Kafka's `EndpointToPartitionsManager`: one entry per member (an instance with several
//! threads has several), the active tasks' source and repartition-source partitions, and the
//! standby (and warm-up) tasks' likewise.

use std::collections::BTreeMap;

use super::assignor::TaskSet;
use super::topology::Topology;
use super::StreamsMember;

/// A member's endpoint and the tasks it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointTasks {
    pub host: String,
    pub port: u16,
    pub active: TaskSet,
    pub standby: TaskSet,
}

/// The members that have an endpoint, with what they hold now (not their target).
pub fn of_members<'a>(members: impl Iterator<Item = &'a StreamsMember>) -> Vec<EndpointTasks> {
    members
        .filter_map(|m| {
            let (host, port) = m.user_endpoint.clone()?;
            Some(EndpointTasks {
                host,
                port,
                active: m.assigned.active.clone(),
                standby: m.assigned.standby.clone(),
            })
        })
        .collect()
}

/// (topic, partitions) of the tasks: for each subtopology, each of its source topics (regex
/// matches included) and repartition source topics that exists, the tasks' partitions that
/// the topic has, in order; topics with none are left out.
pub fn partitions(
    tasks: &TaskSet,
    topology: &Topology,
    partition_counts: &BTreeMap<String, i32>,
    regex_topics: &dyn Fn(&str) -> Vec<String>,
) -> Vec<(String, Vec<i32>)> {
    let mut out = Vec::new();
    for (sub_id, task_partitions) in tasks {
        let Some(sub) = topology.subtopologies.iter().find(|s| &s.id == sub_id) else {
            continue;
        };
        let mut topics: Vec<String> = sub.source_topics.clone();
        topics.extend(sub.source_topic_regex.iter().flat_map(|r| regex_topics(r)));
        topics.extend(sub.repartition_source_topics.iter().map(|t| t.name.clone()));
        topics.sort();
        topics.dedup();
        for topic in topics {
            let Some(&count) = partition_counts.get(&topic) else {
                continue;
            };
            let ps: Vec<i32> = task_partitions
                .iter()
                .copied()
                .filter(|&p| p < count)
                .collect();
            if !ps.is_empty() {
                out.push((topic, ps));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::streams::topology::{Subtopology, TopicInfo};

    #[test]
    fn a_task_maps_to_its_source_and_repartition_partitions() {
        let topology = Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["in".into()],
                    ..Subtopology::default()
                },
                Subtopology {
                    id: "1".into(),
                    repartition_source_topics: vec![TopicInfo {
                        name: "app-rep".into(),
                        ..TopicInfo::default()
                    }],
                    ..Subtopology::default()
                },
            ],
        };
        let counts = BTreeMap::from([("in".to_string(), 2), ("app-rep".to_string(), 4)]);
        let mut tasks = TaskSet::new();
        tasks.entry("0".into()).or_default().extend([1, 3]);
        tasks.entry("1".into()).or_default().extend([3, 0]);
        let got = partitions(&tasks, &topology, &counts, &|_| Vec::new());
        // Partition 3 of `in` does not exist: left out.
        assert_eq!(
            got,
            vec![
                ("in".to_string(), vec![1]),
                ("app-rep".to_string(), vec![0, 3])
            ]
        );
    }
}
