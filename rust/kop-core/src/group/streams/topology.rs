//! A Streams group's topology (KIP-1071) and what the coordinator derives from it, as Kafka
//! 4.4's `InternalTopicManager.configureTopics` does: the partition counts of the internal
//! topics (repartition topics from their upstream inputs, then copartition groups, then
//! changelogs), the number of tasks of each subtopology, the internal topics to create, and the
//! heartbeat status that says why the group cannot be assigned yet.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::copartition;

/// A topic the topology names, as the client describes it (partitions 0: not fixed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// Topics of a subtopology that must have the same number of partitions (a join's inputs):
/// indexes into its `source_topics`, `source_topic_regex` and `repartition_source_topics`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CopartitionGroup {
    pub source_topics: Vec<i16>,
    pub source_topic_regex: Vec<i16>,
    pub repartition_source_topics: Vec<i16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Subtopology {
    pub id: String,
    pub source_topics: Vec<String>,
    pub source_topic_regex: Vec<String>,
    pub changelog_topics: Vec<TopicInfo>,
    pub repartition_sink_topics: Vec<String>,
    pub repartition_source_topics: Vec<TopicInfo>,
    /// Absent in records stored before kop kept them.
    #[serde(default)]
    pub copartition_groups: Vec<CopartitionGroup>,
}

impl Subtopology {
    /// The topic names of each copartition group (Kafka's, from the source and repartition
    /// source topics; a regex is not resolved into one, nor is an index out of range).
    pub fn copartitioned_topics(&self) -> Vec<BTreeSet<&str>> {
        self.copartition_groups
            .iter()
            .map(|g| {
                let sources = g.source_topics.iter().filter_map(|&i| {
                    self.source_topics
                        .get(usize::try_from(i).ok()?)
                        .map(String::as_str)
                });
                let repartition = g.repartition_source_topics.iter().filter_map(|&i| {
                    self.repartition_source_topics
                        .get(usize::try_from(i).ok()?)
                        .map(|t| t.name.as_str())
                });
                sources.chain(repartition).collect()
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Topology {
    pub epoch: i32,
    pub subtopologies: Vec<Subtopology>,
}

/// StreamsGroupHeartbeat status codes (`StreamsGroupHeartbeatResponse.Status`).
pub const STALE_TOPOLOGY: i8 = 0;
pub const MISSING_SOURCE_TOPICS: i8 = 1;
pub const INCORRECTLY_PARTITIONED_TOPICS: i8 = 2;
pub const MISSING_INTERNAL_TOPICS: i8 = 3;
pub const SHUTDOWN_APPLICATION: i8 = 4;
pub const ASSIGNMENT_DELAYED: i8 = 5;

/// What the topology comes to against the topics that exist now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Configured {
    /// Subtopology id → number of tasks; empty unless every topic is there and right.
    pub tasks: BTreeMap<String, i32>,
    /// (status code, detail) for the heartbeat response.
    pub statuses: Vec<(i8, String)>,
    /// Internal topics to create (partition counts resolved).
    pub to_create: Vec<TopicInfo>,
    /// The topology can never be configured (Kafka's StreamsInvalidTopologyException): the
    /// heartbeat fails with STREAMS_INVALID_TOPOLOGY and this message.
    pub invalid: Option<String>,
}

impl Configured {
    pub fn is_ready(&self) -> bool {
        self.statuses.is_empty() && self.invalid.is_none() && !self.tasks.is_empty()
    }
}

/// Why a topology cannot be configured now: a heartbeat status (Kafka's
/// TopicConfigurationException) or an invalid topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Status(i8, String),
    Invalid(String),
}

/// Topic names for a status detail as Kafka writes them: the first three, then how many more.
pub fn summarize<'a>(topics: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = topics.into_iter().collect();
    if all.is_empty() {
        return "<none>".into();
    }
    let shown = all[..all.len().min(3)].join(", ");
    match all.len() {
        n if n > 3 => format!("{shown} and {} additional topics", n - 3),
        _ => shown,
    }
}

/// The partition count of a topic: the existing topic's, else the one decided for it.
pub(super) fn count_of(
    topic: &str,
    topics: &BTreeMap<String, i32>,
    decided: &BTreeMap<String, i32>,
) -> Option<i32> {
    topics.get(topic).or_else(|| decided.get(topic)).copied()
}

impl Topology {
    fn is_repartition_source(&self, name: &str) -> bool {
        self.subtopologies
            .iter()
            .any(|s| s.repartition_source_topics.iter().any(|t| t.name == name))
    }

    /// Resolves the topology against the topics there are now (Kafka 4.4's
    /// `InternalTopicManager.configureTopics`): source topics must exist; a repartition topic
    /// without a fixed count gets the largest input count of the subtopology writing to it;
    /// copartition groups then align their repartition topics with their source topics (or
    /// report topics that differ); a changelog topic has one partition per task of its
    /// subtopology; existing internal topics must have the counts decided, missing ones are
    /// to be created.
    pub fn configure(
        &self,
        topics: &BTreeMap<String, i32>,
        regex_topics: &dyn Fn(&str) -> Vec<String>,
    ) -> Configured {
        match self.resolve(topics, regex_topics) {
            Ok((tasks, to_create)) if to_create.is_empty() => Configured {
                tasks,
                ..Configured::default()
            },
            Ok((_, to_create)) => Configured {
                statuses: vec![(
                    MISSING_INTERNAL_TOPICS,
                    format!(
                        "Internal topics are missing: {}",
                        summarize(to_create.iter().map(|t| t.name.as_str()))
                    ),
                )],
                to_create,
                ..Configured::default()
            },
            Err(Failure::Status(code, detail)) => Configured {
                statuses: vec![(code, detail)],
                ..Configured::default()
            },
            Err(Failure::Invalid(msg)) => Configured {
                invalid: Some(msg),
                ..Configured::default()
            },
        }
    }

    /// Tasks per subtopology and the internal topics to create, or why not.
    #[allow(clippy::type_complexity)]
    fn resolve(
        &self,
        topics: &BTreeMap<String, i32>,
        regex_topics: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<(BTreeMap<String, i32>, Vec<TopicInfo>), Failure> {
        let missing: BTreeSet<&str> = self
            .subtopologies
            .iter()
            .flat_map(|s| &s.source_topics)
            .filter(|t| !self.is_repartition_source(t) && !topics.contains_key(*t))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Failure::Status(
                MISSING_SOURCE_TOPICS,
                format!("Source topics {} are missing.", summarize(missing)),
            ));
        }
        // A subtopology reading only topics of a pattern that matches none yet (kop resolves
        // source topic patterns; Kafka 4.4 does not).
        let unmatched = self.subtopologies.iter().find(|s| {
            s.source_topics.is_empty()
                && s.repartition_source_topics.is_empty()
                && !s.source_topic_regex.is_empty()
                && s.source_topic_regex.iter().all(|r| {
                    regex_topics(r)
                        .iter()
                        .all(|t| !topics.contains_key(t.as_str()))
                })
        });
        if let Some(s) = unmatched {
            return Err(Failure::Status(
                MISSING_SOURCE_TOPICS,
                format!("Subtopology {} has no source topic with partitions.", s.id),
            ));
        }
        let mut decided = self.repartition_counts(topics, regex_topics)?;
        copartition::enforce(self, topics, &mut decided)?;
        let mut tasks = BTreeMap::new();
        let mut internal: Vec<TopicInfo> = Vec::new();
        for s in &self.subtopologies {
            let regex_inputs: Vec<String> = s
                .source_topic_regex
                .iter()
                .flat_map(|r| regex_topics(r))
                .collect();
            let max = s
                .source_topics
                .iter()
                .chain(&regex_inputs)
                .chain(s.repartition_source_topics.iter().map(|t| &t.name))
                .filter_map(|t| count_of(t, topics, &decided))
                .max();
            let Some(max) = max else {
                if s.source_topic_regex.is_empty() {
                    return Err(Failure::Invalid(format!(
                        "No source topics found for subtopology {}",
                        s.id
                    )));
                }
                return Err(Failure::Status(
                    MISSING_SOURCE_TOPICS,
                    format!("Subtopology {} has no source topic with partitions.", s.id),
                ));
            };
            tasks.insert(s.id.clone(), max);
            for t in &s.repartition_source_topics {
                let n = match t.partitions {
                    0 => decided.get(&t.name).copied().unwrap_or(max),
                    n => n,
                };
                internal.push(TopicInfo {
                    partitions: n,
                    ..t.clone()
                });
            }
            for t in &s.changelog_topics {
                let n = match t.partitions {
                    0 => max,
                    n => n,
                };
                internal.push(TopicInfo {
                    partitions: n,
                    ..t.clone()
                });
            }
        }
        let mut to_create: Vec<TopicInfo> = Vec::new();
        for t in internal {
            match topics.get(&t.name) {
                Some(&have) if have != t.partitions => {
                    return Err(Failure::Status(
                        INCORRECTLY_PARTITIONED_TOPICS,
                        format!(
                            "Existing topic {} has different number of partitions: expected {}, found {have}",
                            t.name, t.partitions
                        ),
                    ))
                }
                Some(_) => {}
                None if to_create.iter().any(|c| c.name == t.name) => {}
                None => to_create.push(t),
            }
        }
        to_create.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((tasks, to_create))
    }

    /// The partition count of every repartition topic (Kafka's `RepartitionTopics`): a fixed
    /// count as given; otherwise the largest count among the inputs of the subtopology that
    /// writes to it (its source topics and its repartition topics decided so far), repeated
    /// until every one is decided.
    fn repartition_counts(
        &self,
        topics: &BTreeMap<String, i32>,
        regex_topics: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<BTreeMap<String, i32>, Failure> {
        let mut counts: BTreeMap<String, i32> = self
            .subtopologies
            .iter()
            .flat_map(|s| &s.repartition_source_topics)
            .filter(|t| t.partitions != 0)
            .map(|t| (t.name.clone(), t.partitions))
            .collect();
        loop {
            let (mut needed, mut progress) = (false, false);
            for s in &self.subtopologies {
                for sink in &s.repartition_sink_topics {
                    if counts.contains_key(sink) {
                        continue;
                    }
                    let from_repartition = s
                        .repartition_source_topics
                        .iter()
                        .filter_map(|t| counts.get(&t.name).copied());
                    let from_sources = s
                        .source_topics
                        .iter()
                        .cloned()
                        .chain(s.source_topic_regex.iter().flat_map(|r| regex_topics(r)))
                        .filter_map(|t| topics.get(&t).copied());
                    match from_repartition.chain(from_sources).max() {
                        Some(n) => {
                            counts.insert(sink.clone(), n);
                            progress = true;
                        }
                        None => needed = true,
                    }
                }
            }
            if !needed {
                break;
            }
            if !progress {
                return Err(Failure::Invalid(
                    "Failed to compute number of partitions for all repartition topics. There may be loops in the topology that cannot be resolved.".into(),
                ));
            }
        }
        let undecided = self
            .subtopologies
            .iter()
            .flat_map(|s| &s.repartition_source_topics)
            .any(|t| !counts.contains_key(&t.name));
        if undecided {
            return Err(Failure::Invalid(
                "Failed to compute number of partitions for all repartition topics, because a repartition source topic is never used as a sink topic.".into(),
            ));
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, partitions: i32) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            partitions,
            ..TopicInfo::default()
        }
    }

    /// Word count: `input` → repartition by word → counts with a changelog.
    fn word_count() -> Topology {
        Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["input".into()],
                    repartition_sink_topics: vec!["app-counts-repartition".into()],
                    ..Subtopology::default()
                },
                Subtopology {
                    id: "1".into(),
                    source_topics: vec!["app-counts-repartition".into()],
                    repartition_source_topics: vec![info("app-counts-repartition", 0)],
                    changelog_topics: vec![info("app-counts-changelog", 0)],
                    ..Subtopology::default()
                },
            ],
        }
    }

    fn no_regex(_: &str) -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn missing_source_topics_are_reported_and_nothing_is_created() {
        let c = word_count().configure(&BTreeMap::new(), &no_regex);
        assert_eq!(c.statuses[0].0, MISSING_SOURCE_TOPICS);
        assert!(c.to_create.is_empty() && c.tasks.is_empty());
    }

    #[test]
    fn internal_topics_take_their_counts_from_the_inputs() {
        let topics = BTreeMap::from([("input".to_string(), 3)]);
        let c = word_count().configure(&topics, &no_regex);
        assert_eq!(c.statuses[0].0, MISSING_INTERNAL_TOPICS);
        assert_eq!(
            c.to_create,
            vec![
                info("app-counts-changelog", 3),
                info("app-counts-repartition", 3),
            ]
        );
        assert_eq!(
            c.statuses[0].1,
            "Internal topics are missing: app-counts-changelog, app-counts-repartition"
        );
        let mut topics = topics;
        topics.insert("app-counts-repartition".into(), 3);
        topics.insert("app-counts-changelog".into(), 3);
        let c = word_count().configure(&topics, &no_regex);
        assert!(c.is_ready());
        assert_eq!(c.tasks, BTreeMap::from([("0".into(), 3), ("1".into(), 3)]));
    }

    #[test]
    fn a_changelog_with_the_wrong_count_is_reported() {
        let topics = BTreeMap::from([
            ("input".to_string(), 2),
            ("app-counts-repartition".to_string(), 2),
            ("app-counts-changelog".to_string(), 5),
        ]);
        let c = word_count().configure(&topics, &no_regex);
        assert_eq!(
            c.statuses,
            vec![(
                INCORRECTLY_PARTITIONED_TOPICS,
                "Existing topic app-counts-changelog has different number of partitions: expected 2, found 5".into()
            )]
        );
        assert!(!c.is_ready() && c.to_create.is_empty());
    }

    /// `orders.selectKey(...).join(customers)`: subtopology 0 reads `orders` and writes the
    /// repartition topic; subtopology 1 joins it with `customers` (copartitioned, or not).
    fn join_after_select_key(copartitioned: bool) -> Topology {
        Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["orders".into()],
                    repartition_sink_topics: vec!["app-by-customer-repartition".into()],
                    ..Subtopology::default()
                },
                Subtopology {
                    id: "1".into(),
                    source_topics: vec!["customers".into()],
                    repartition_source_topics: vec![info("app-by-customer-repartition", 0)],
                    changelog_topics: vec![info("app-customers-changelog", 0)],
                    copartition_groups: if copartitioned {
                        vec![CopartitionGroup {
                            source_topics: vec![0],
                            repartition_source_topics: vec![0],
                            ..CopartitionGroup::default()
                        }]
                    } else {
                        Vec::new()
                    },
                    ..Subtopology::default()
                },
            ],
        }
    }

    fn counts(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn a_repartition_topic_in_a_copartition_group_takes_its_source_topics_count() {
        let topics = counts(&[("orders", 3), ("customers", 2)]);
        let c = join_after_select_key(true).configure(&topics, &no_regex);
        assert_eq!(
            c.to_create,
            vec![
                info("app-by-customer-repartition", 2),
                info("app-customers-changelog", 2)
            ]
        );
        // Not copartitioned, it would take the largest count upstream (orders: 3).
        let c = join_after_select_key(false).configure(&topics, &no_regex);
        assert_eq!(c.to_create[0], info("app-by-customer-repartition", 3));

        let topics = counts(&[
            ("orders", 3),
            ("customers", 2),
            ("app-by-customer-repartition", 2),
            ("app-customers-changelog", 2),
        ]);
        let c = join_after_select_key(true).configure(&topics, &no_regex);
        assert!(c.is_ready(), "{c:?}");
        assert_eq!(c.tasks, counts(&[("0", 3), ("1", 2)]));
    }

    #[test]
    fn an_existing_repartition_topic_with_another_count_is_reported() {
        let topics = counts(&[
            ("orders", 3),
            ("customers", 2),
            ("app-by-customer-repartition", 3),
        ]);
        let c = join_after_select_key(true).configure(&topics, &no_regex);
        assert_eq!(
            c.statuses,
            vec![(
                INCORRECTLY_PARTITIONED_TOPICS,
                "Existing topic app-by-customer-repartition has different number of partitions: expected 2, found 3".into()
            )]
        );
        assert!(c.to_create.is_empty() && c.tasks.is_empty());
    }

    /// `left.join(right)` of two source topics, copartitioned.
    fn stream_stream_join() -> Topology {
        Topology {
            epoch: 0,
            subtopologies: vec![Subtopology {
                id: "0".into(),
                source_topics: vec!["left".into(), "right".into()],
                copartition_groups: vec![CopartitionGroup {
                    source_topics: vec![0, 1],
                    ..CopartitionGroup::default()
                }],
                ..Subtopology::default()
            }],
        }
    }

    #[test]
    fn source_topics_of_a_copartition_group_with_different_counts_are_reported() {
        let topics = counts(&[("left", 3), ("right", 2)]);
        let c = stream_stream_join().configure(&topics, &no_regex);
        assert_eq!(
            c.statuses,
            vec![(
                INCORRECTLY_PARTITIONED_TOPICS,
                "Following topics do not have the same number of partitions: [{left=3, right=2}]"
                    .into()
            )]
        );
        assert!(c.tasks.is_empty() && c.to_create.is_empty() && c.invalid.is_none());
        let topics = counts(&[("left", 2), ("right", 2)]);
        let c = stream_stream_join().configure(&topics, &no_regex);
        assert_eq!(c.tasks, counts(&[("0", 2)]));
    }

    #[test]
    fn a_fixed_repartition_count_must_match_its_copartition_group() {
        let mut t = join_after_select_key(true);
        t.subtopologies[1].repartition_source_topics[0].partitions = 4;
        let topics = counts(&[("orders", 3), ("customers", 2)]);
        let c = t.configure(&topics, &no_regex);
        assert_eq!(
            c.statuses,
            vec![(
                INCORRECTLY_PARTITIONED_TOPICS,
                "Number of partitions [4] of repartition topic [app-by-customer-repartition] doesn't match number of partitions [2] of the source topic.".into()
            )]
        );
    }

    /// Two repartition topics joined: `a.selectKey(..).join(b.selectKey(..))`.
    fn two_repartition_topics(fixed: i32) -> Topology {
        Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["a".into()],
                    repartition_sink_topics: vec!["ra".into()],
                    ..Subtopology::default()
                },
                Subtopology {
                    id: "1".into(),
                    source_topics: vec!["b".into()],
                    repartition_sink_topics: vec!["rb".into()],
                    ..Subtopology::default()
                },
                Subtopology {
                    id: "2".into(),
                    repartition_source_topics: vec![info("ra", fixed), info("rb", 0)],
                    copartition_groups: vec![CopartitionGroup {
                        repartition_source_topics: vec![0, 1],
                        ..CopartitionGroup::default()
                    }],
                    ..Subtopology::default()
                },
            ],
        }
    }

    #[test]
    fn a_copartition_group_of_repartition_topics_takes_their_largest_or_fixed_count() {
        let topics = counts(&[("a", 2), ("b", 5)]);
        let c = two_repartition_topics(0).configure(&topics, &no_regex);
        assert_eq!(c.to_create, vec![info("ra", 5), info("rb", 5)]);
        let c = two_repartition_topics(3).configure(&topics, &no_regex);
        assert_eq!(c.to_create, vec![info("ra", 3), info("rb", 3)]);
    }

    #[test]
    fn repartition_counts_that_cannot_be_decided_make_the_topology_invalid() {
        // Each subtopology reads only the other's repartition topic: a loop.
        let t = Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    repartition_source_topics: vec![info("r1", 0)],
                    repartition_sink_topics: vec!["r0".into()],
                    ..Subtopology::default()
                },
                Subtopology {
                    id: "1".into(),
                    repartition_source_topics: vec![info("r0", 0)],
                    repartition_sink_topics: vec!["r1".into()],
                    ..Subtopology::default()
                },
            ],
        };
        let c = t.configure(&BTreeMap::new(), &no_regex);
        assert!(c.invalid.unwrap().contains("There may be loops"));
    }

    #[test]
    fn status_details_name_at_most_three_topics() {
        assert_eq!(summarize(["a", "b"]), "a, b");
        assert_eq!(
            summarize(["a", "b", "c", "d", "e"]),
            "a, b, c and 2 additional topics"
        );
        let t = Topology {
            epoch: 0,
            subtopologies: vec![Subtopology {
                id: "0".into(),
                source_topics: vec!["x".into(), "w".into()],
                ..Subtopology::default()
            }],
        };
        let c = t.configure(&BTreeMap::new(), &no_regex);
        assert_eq!(
            c.statuses,
            vec![(
                MISSING_SOURCE_TOPICS,
                "Source topics w, x are missing.".into()
            )]
        );
    }
}
