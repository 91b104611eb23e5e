//! Copartition groups (the inputs of a join, which must have the same number of partitions),
//! enforced as Kafka 4.4's `CopartitionedTopicsEnforcer` does once the repartition topics'
//! counts are known: a group's repartition topics take the partition count of its source
//! topics, which must all agree; a group of repartition topics only takes their largest count,
//! or, when the topology fixes the count of any repartition topic, that count.

use std::collections::{BTreeMap, BTreeSet};

use super::topology::{count_of, Failure, Topology, INCORRECTLY_PARTITIONED_TOPICS};

/// A map as Java's `TreeMap.toString` writes it (`{a=1, b=2}`), for Kafka's status details.
fn java_map(m: &BTreeMap<&str, i32>) -> String {
    let entries: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", entries.join(", "))
}

fn not_copartitioned(topics: &BTreeMap<&str, i32>) -> Failure {
    Failure::Status(
        INCORRECTLY_PARTITIONED_TOPICS,
        format!(
            "Following topics do not have the same number of partitions: [{}]",
            java_map(topics)
        ),
    )
}

/// Aligns the repartition topics of every copartition group; `decided` (repartition topic →
/// partitions) gets the counts enforced. A topic's count is the existing topic's, else the one
/// decided.
pub fn enforce(
    topology: &Topology,
    topics: &BTreeMap<String, i32>,
    decided: &mut BTreeMap<String, i32>,
) -> Result<(), Failure> {
    let repartition = topology
        .subtopologies
        .iter()
        .flat_map(|s| &s.repartition_source_topics);
    let fixed: BTreeSet<&str> = repartition
        .clone()
        .filter(|t| t.partitions != 0)
        .map(|t| t.name.as_str())
        .collect();
    let all_repartition: BTreeSet<&str> = repartition.map(|t| t.name.as_str()).collect();
    let mut subtopologies: Vec<_> = topology.subtopologies.iter().collect();
    subtopologies.sort_by(|a, b| a.id.cmp(&b.id));
    for s in subtopologies {
        for group in s.copartitioned_topics() {
            enforce_group(&group, &fixed, &all_repartition, topics, decided)?;
        }
    }
    Ok(())
}

fn enforce_group(
    group: &BTreeSet<&str>,
    fixed: &BTreeSet<&str>,
    all_repartition: &BTreeSet<&str>,
    topics: &BTreeMap<String, i32>,
    decided: &mut BTreeMap<String, i32>,
) -> Result<(), Failure> {
    if group.is_empty() {
        return Ok(());
    }
    let count = |t: &str, decided: &BTreeMap<String, i32>| {
        count_of(t, topics, decided).ok_or_else(|| {
            Failure::Invalid(format!("Number of partitions is not set for topic: {t}"))
        })
    };
    let mut repartition: BTreeMap<&str, i32> = BTreeMap::new();
    let mut sources: BTreeMap<&str, i32> = BTreeMap::new();
    for &t in group {
        let n = count(t, decided)?;
        if all_repartition.contains(t) {
            repartition.insert(t, n);
        } else {
            sources.insert(t, n);
        }
    }
    let n = if let Some(&first) = sources.values().next() {
        // Source topics decide, and must agree.
        if sources.values().any(|&c| c != first) {
            return Err(not_copartitioned(&sources));
        }
        first
    } else if let Some(first) = fixed.first() {
        // Only repartition topics: a count fixed by the topology decides. Kafka compares every
        // fixed repartition topic of the topology here, not only the group's.
        let first = count(first, decided)?;
        for t in fixed {
            if count(t, decided)? != first {
                return Err(not_copartitioned(&repartition));
            }
        }
        first
    } else {
        match repartition.values().copied().max() {
            Some(n) if n > 0 => n,
            _ => {
                let names: Vec<&str> = repartition.keys().copied().collect();
                return Err(Failure::Invalid(format!(
                    "All topics in the copartition group had undefined partition number: [{}]",
                    names.join(", ")
                )));
            }
        }
    };
    for (&t, &have) in &repartition {
        decided.insert(t.to_string(), n);
        if fixed.contains(t) && have != n {
            return Err(Failure::Status(
                INCORRECTLY_PARTITIONED_TOPICS,
                format!(
                    "Number of partitions [{have}] of repartition topic [{t}] doesn't match number of partitions [{n}] of the source topic."
                ),
            ));
        }
    }
    Ok(())
}
