//! Server-side assignors for KIP-848 consumer groups: `uniform` (balanced and sticky) and
//! `range` (contiguous ranges per topic, like the client-side range assignor).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions per topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
pub const ASSIGNORS: &[&str] = &[UNIFORM, RANGE];

/// What the assignor sees of one member.
pub struct AssignorMember<'a> {
    pub id: &'a str,
    /// Subscribed topics that exist: (topic id, partition count).
    pub topics: Vec<(Uuid, i32)>,
    /// The member's previous target (for stickiness).
    pub previous: Option<&'a Assignment>,
}

pub fn assign(name: &str, members: &[AssignorMember<'_>]) -> BTreeMap<String, Assignment> {
    if name == RANGE {
        range(members)
    } else {
        uniform(members)
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Balanced within one partition among the members able to take each partition, keeping
/// partitions where they were whenever balance allows.
fn uniform(members: &[AssignorMember<'_>]) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.id.to_string(), Assignment::new()))
        .collect();
    let subscribers = |topic: &Uuid| -> Vec<&str> {
        members
            .iter()
            .filter(|m| m.topics.iter().any(|(t, _)| t == topic))
            .map(|m| m.id)
            .collect()
    };
    let mut all: BTreeMap<Uuid, i32> = BTreeMap::new();
    for m in members {
        for (t, n) in &m.topics {
            all.insert(*t, *n);
        }
    }
    // 1. Stickiness: a partition stays with its previous owner if it still subscribes.
    let mut owner: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    for m in members {
        let Some(prev) = m.previous else { continue };
        for (t, parts) in prev {
            let Some(n) = all.get(t) else { continue };
            if !m.topics.iter().any(|(x, _)| x == t) {
                continue;
            }
            for &p in parts.iter().filter(|&&p| p < *n) {
                owner.entry((*t, p)).or_insert_with(|| m.id.to_string());
            }
        }
    }
    for ((t, p), id) in &owner {
        out.entry(id.clone())
            .or_default()
            .entry(*t)
            .or_default()
            .insert(*p);
    }
    // 2. Unowned partitions go to the least loaded subscriber.
    for (t, n) in &all {
        let subs = subscribers(t);
        for p in 0..*n {
            if owner.contains_key(&(*t, p)) {
                continue;
            }
            if let Some(id) = subs.iter().min_by_key(|id| (count(&out[**id]), **id)) {
                out.entry(id.to_string())
                    .or_default()
                    .entry(*t)
                    .or_default()
                    .insert(p);
                owner.insert((*t, p), id.to_string());
            }
        }
    }
    // 3. Balance: move a partition from a member to a subscriber with at least two fewer.
    loop {
        let mut moved = false;
        let mut by_load: Vec<(usize, String)> =
            out.iter().map(|(id, a)| (count(a), id.clone())).collect();
        by_load.sort_by(|a, b| b.cmp(a));
        'search: for (load, from) in &by_load {
            let candidates: Vec<(Uuid, i32)> = out[from]
                .iter()
                .flat_map(|(t, ps)| ps.iter().rev().map(move |p| (*t, *p)))
                .collect();
            for (t, p) in candidates {
                let target = subscribers(&t)
                    .into_iter()
                    .filter(|id| count(&out[*id]) + 1 < *load)
                    .min_by_key(|id| (count(&out[*id]), *id));
                if let Some(to) = target {
                    let to = to.to_string();
                    if let Some(ps) = out.get_mut(from).and_then(|a| a.get_mut(&t)) {
                        ps.remove(&p);
                        if ps.is_empty() {
                            out.get_mut(from).map(|a| a.remove(&t));
                        }
                    }
                    out.entry(to).or_default().entry(t).or_default().insert(p);
                    moved = true;
                    break 'search;
                }
            }
        }
        if !moved {
            break;
        }
    }
    out
}

/// Per topic: subscribers sorted by member id take contiguous ranges, the first ones one
/// partition more when the count does not divide evenly.
fn range(members: &[AssignorMember<'_>]) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.id.to_string(), Assignment::new()))
        .collect();
    let mut topics: BTreeMap<Uuid, (i32, Vec<&str>)> = BTreeMap::new();
    for m in members {
        for (t, n) in &m.topics {
            topics.entry(*t).or_insert((*n, Vec::new())).1.push(m.id);
        }
    }
    for (t, (n, mut subs)) in topics {
        subs.sort_unstable();
        let k = subs.len() as i32;
        let (each, extra) = (n / k, n % k);
        let mut next = 0;
        for (i, id) in subs.iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            if take > 0 {
                out.entry(id.to_string())
                    .or_default()
                    .insert(t, (next..next + take).collect());
            }
            next += take;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member<'a>(
        id: &'a str,
        topics: &[(Uuid, i32)],
        prev: Option<&'a Assignment>,
    ) -> AssignorMember<'a> {
        AssignorMember {
            id,
            topics: topics.to_vec(),
            previous: prev,
        }
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let t = Uuid::from_u128(1);
        let one = assign(UNIFORM, &[member("a", &[(t, 6)], None)]);
        assert_eq!(count(&one["a"]), 6);
        let two = assign(
            UNIFORM,
            &[
                member("a", &[(t, 6)], Some(&one["a"])),
                member("b", &[(t, 6)], None),
            ],
        );
        assert_eq!((count(&two["a"]), count(&two["b"])), (3, 3));
        let three = assign(
            UNIFORM,
            &[
                member("a", &[(t, 6)], Some(&two["a"])),
                member("b", &[(t, 6)], Some(&two["b"])),
                member("c", &[(t, 6)], None),
            ],
        );
        for id in ["a", "b"] {
            assert!(
                three[id][&t].is_subset(&two[id][&t]),
                "{id} only lost partitions"
            );
            assert_eq!(count(&three[id]), 2);
        }
    }

    #[test]
    fn uniform_respects_subscriptions_and_range_is_contiguous() {
        let (t1, t2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let r = assign(
            UNIFORM,
            &[
                member("a", &[(t1, 2), (t2, 4)], None),
                member("b", &[(t2, 4)], None),
            ],
        );
        assert_eq!(r["b"].keys().collect::<Vec<_>>(), vec![&t2]);
        assert_eq!(count(&r["a"]) + count(&r["b"]), 6);
        assert_eq!(count(&r["a"]), 3);
        let r = assign(
            RANGE,
            &[member("b", &[(t1, 5)], None), member("a", &[(t1, 5)], None)],
        );
        assert_eq!(
            r["a"][&t1].iter().copied().collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(r["b"][&t1].iter().copied().collect::<Vec<_>>(), vec![3, 4]);
    }
}
