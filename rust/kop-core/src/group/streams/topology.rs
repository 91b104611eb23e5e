//! A Streams group's topology (KIP-1071) and what the coordinator derives from it: the number
//! of tasks of each subtopology, the internal topics (repartition and changelog) to create,
//! and the heartbeat statuses that say why the group cannot be assigned yet.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A topic the topology names, as the client describes it (partitions 0: not fixed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Subtopology {
    pub id: String,
    pub source_topics: Vec<String>,
    pub source_topic_regex: Vec<String>,
    pub changelog_topics: Vec<TopicInfo>,
    pub repartition_sink_topics: Vec<String>,
    pub repartition_source_topics: Vec<TopicInfo>,
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

/// What the topology comes to against the topics that exist now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Configured {
    /// Subtopology id → number of tasks; empty unless every topic is there and right.
    pub tasks: BTreeMap<String, i32>,
    /// (status code, detail) for the heartbeat response.
    pub statuses: Vec<(i8, String)>,
    /// Internal topics to create (partition counts resolved).
    pub to_create: Vec<TopicInfo>,
}

impl Configured {
    pub fn is_ready(&self) -> bool {
        self.statuses.is_empty() && !self.tasks.is_empty()
    }
}

/// The partition counts of a subtopology's inputs that are known.
fn input_counts(
    s: &Subtopology,
    topics: &BTreeMap<String, i32>,
    regex_topics: &dyn Fn(&str) -> Vec<String>,
    repartition: &BTreeMap<String, i32>,
) -> Vec<i32> {
    let mut out: Vec<i32> = s
        .source_topics
        .iter()
        .filter_map(|t| topics.get(t).copied())
        .collect();
    out.extend(
        s.source_topic_regex
            .iter()
            .flat_map(|r| regex_topics(r))
            .filter_map(|t| topics.get(&t).copied()),
    );
    out.extend(
        s.repartition_source_topics
            .iter()
            .filter_map(|t| repartition.get(&t.name).copied()),
    );
    out
}

impl Topology {
    fn is_repartition_source(&self, name: &str) -> bool {
        self.subtopologies
            .iter()
            .any(|s| s.repartition_source_topics.iter().any(|t| t.name == name))
    }

    /// Resolves the topology as Kafka's `InternalTopicManager.configureTopics` does: source
    /// topics must exist; a repartition topic without a fixed count gets the largest input
    /// count of the subtopologies writing to it; a subtopology has as many tasks as its
    /// largest input; a changelog topic has one partition per task.
    pub fn configure(
        &self,
        topics: &BTreeMap<String, i32>,
        regex_topics: &dyn Fn(&str) -> Vec<String>,
    ) -> Configured {
        let mut out = Configured::default();
        let missing: Vec<&str> = self
            .subtopologies
            .iter()
            .flat_map(|s| &s.source_topics)
            .filter(|t| !self.is_repartition_source(t) && !topics.contains_key(*t))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            out.statuses.push((
                MISSING_SOURCE_TOPICS,
                format!("Source topics {} are missing.", missing.join(", ")),
            ));
            return out;
        }
        // Repartition topics: fixed counts first, then inferred until nothing changes.
        let mut repartition: BTreeMap<String, i32> = BTreeMap::new();
        for s in &self.subtopologies {
            for t in s
                .repartition_source_topics
                .iter()
                .filter(|t| t.partitions > 0)
            {
                repartition.insert(t.name.clone(), t.partitions);
            }
        }
        for _ in 0..=self.subtopologies.len() {
            let mut changed = false;
            for s in &self.subtopologies {
                let Some(max) = input_counts(s, topics, regex_topics, &repartition)
                    .into_iter()
                    .max()
                else {
                    continue;
                };
                for sink in &s.repartition_sink_topics {
                    if self.is_repartition_source(sink) && !repartition.contains_key(sink) {
                        repartition.insert(sink.clone(), max);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        let mut wrong = Vec::new();
        for s in &self.subtopologies {
            let counts = input_counts(s, topics, regex_topics, &repartition);
            let Some(&tasks) = counts.iter().max() else {
                out.statuses.push((
                    MISSING_SOURCE_TOPICS,
                    format!("Subtopology {} has no source topic with partitions.", s.id),
                ));
                continue;
            };
            out.tasks.insert(s.id.clone(), tasks);
            let internal = s
                .repartition_source_topics
                .iter()
                .map(|t| (t, repartition.get(&t.name).copied().unwrap_or(tasks)))
                .chain(s.changelog_topics.iter().map(|t| {
                    let n = if t.partitions > 0 {
                        t.partitions
                    } else {
                        tasks
                    };
                    (t, n)
                }));
            for (t, n) in internal {
                match topics.get(&t.name) {
                    None => {
                        if !out.to_create.iter().any(|c| c.name == t.name) {
                            out.to_create.push(TopicInfo {
                                partitions: n,
                                ..t.clone()
                            });
                        }
                    }
                    Some(&have) if have != n => wrong.push(format!("{} ({have} != {n})", t.name)),
                    Some(_) => {}
                }
            }
        }
        if !out.to_create.is_empty() {
            let names: Vec<&str> = out.to_create.iter().map(|t| t.name.as_str()).collect();
            out.statuses.push((
                MISSING_INTERNAL_TOPICS,
                format!("Internal topics are missing: [{}]", names.join(", ")),
            ));
        }
        if !wrong.is_empty() {
            out.statuses.push((
                INCORRECTLY_PARTITIONED_TOPICS,
                format!(
                    "Internal topics are incorrectly partitioned: {}",
                    wrong.join(", ")
                ),
            ));
        }
        if !out.statuses.is_empty() {
            out.tasks.clear();
        }
        out
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
                info("app-counts-repartition", 3),
                info("app-counts-changelog", 3)
            ]
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
        assert_eq!(c.statuses[0].0, INCORRECTLY_PARTITIONED_TOPICS);
        assert!(!c.is_ready());
    }
}
