//! The server-side task assignor of Streams groups, after Kafka's sticky task assignor: every
//! task goes to one member as an active task, balanced by count, staying where it was while
//! the owner is within its share; each active task gets up to `num_standby` standby copies on
//! members of other processes (a process never holds two copies of a task). Warm-up tasks are
//! not assigned (Kafka uses them only to move stateful tasks to caught-up members).

use std::collections::{BTreeMap, BTreeSet};

/// Subtopology id → partitions.
pub type TaskSet = BTreeMap<String, BTreeSet<i32>>;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberTasks {
    pub active: TaskSet,
    pub standby: TaskSet,
}

/// What the assignor knows of a member: its process and what it had before.
pub struct AssignorMember<'a> {
    pub id: &'a str,
    pub process_id: &'a str,
    pub previous: &'a MemberTasks,
}

pub fn contains(set: &TaskSet, sub: &str, p: i32) -> bool {
    set.get(sub).is_some_and(|ps| ps.contains(&p))
}

fn add(set: &mut TaskSet, sub: &str, p: i32) {
    set.entry(sub.to_string()).or_default().insert(p);
}

fn count(set: &TaskSet) -> usize {
    set.values().map(BTreeSet::len).sum()
}

/// Assigns the tasks (`subtopology id → number of tasks`) to the members; member id → tasks.
pub fn assign(
    members: &[AssignorMember<'_>],
    tasks: &BTreeMap<String, i32>,
    num_standby: usize,
) -> BTreeMap<String, MemberTasks> {
    let mut out: BTreeMap<String, MemberTasks> = members
        .iter()
        .map(|m| (m.id.to_string(), MemberTasks::default()))
        .collect();
    if members.is_empty() {
        return out;
    }
    let all: Vec<(&str, i32)> = tasks
        .iter()
        .flat_map(|(s, &n)| (0..n).map(move |p| (s.as_str(), p)))
        .collect();
    let quota = all.len().div_ceil(members.len());
    // Sticky pass: a task stays with its previous active owner within the quota.
    let mut unassigned = Vec::new();
    for &(s, p) in &all {
        let keeper = members
            .iter()
            .find(|m| contains(&m.previous.active, s, p) && count(&out[m.id].active) < quota);
        match keeper {
            Some(m) => add(&mut out.get_mut(m.id).expect("member").active, s, p),
            None => unassigned.push((s, p)),
        }
    }
    // The rest to the least loaded, a previous standby owner first (its state is warm).
    for (s, p) in unassigned {
        let least = |prefer_standby: bool| {
            members
                .iter()
                .filter(|m| !prefer_standby || contains(&m.previous.standby, s, p))
                .filter(|m| count(&out[m.id].active) < quota)
                .min_by_key(|m| (count(&out[m.id].active), m.id))
        };
        let m = least(true)
            .or_else(|| least(false))
            .expect("quota leaves room");
        add(&mut out.get_mut(m.id).expect("member").active, s, p);
    }
    if num_standby == 0 {
        return out;
    }
    let process_of: BTreeMap<&str, &str> = members.iter().map(|m| (m.id, m.process_id)).collect();
    for &(s, p) in &all {
        for _ in 0..num_standby {
            // Processes already holding a copy of the task.
            let holding: BTreeSet<&str> = out
                .iter()
                .filter(|(_, t)| contains(&t.active, s, p) || contains(&t.standby, s, p))
                .map(|(id, _)| process_of[id.as_str()])
                .collect();
            let candidate = members
                .iter()
                .filter(|m| !holding.contains(m.process_id))
                .min_by_key(|m| {
                    let was = contains(&m.previous.standby, s, p);
                    (!was, count(&out[m.id].standby), m.id)
                });
            match candidate {
                Some(m) => add(&mut out.get_mut(m.id).expect("member").standby, s, p),
                None => break,
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(n0: i32, n1: i32) -> BTreeMap<String, i32> {
        BTreeMap::from([("0".to_string(), n0), ("1".to_string(), n1)])
    }

    fn set(items: &[(&str, i32)]) -> TaskSet {
        let mut s = TaskSet::new();
        for &(sub, p) in items {
            add(&mut s, sub, p);
        }
        s
    }

    fn every_task_once(out: &BTreeMap<String, MemberTasks>, t: &BTreeMap<String, i32>) {
        for (s, &n) in t {
            for p in 0..n {
                let owners = out.values().filter(|m| contains(&m.active, s, p)).count();
                assert_eq!(owners, 1, "task {s}_{p}");
            }
        }
    }

    #[test]
    fn tasks_are_spread_evenly_and_each_has_one_owner() {
        let none = MemberTasks::default();
        let members: Vec<AssignorMember> = ["a", "b", "c"]
            .iter()
            .map(|id| AssignorMember {
                id,
                process_id: id,
                previous: &none,
            })
            .collect();
        let t = tasks(4, 3);
        let out = assign(&members, &t, 0);
        every_task_once(&out, &t);
        let loads: Vec<usize> = out.values().map(|m| count(&m.active)).collect();
        assert!(
            loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
            "{loads:?}"
        );
    }

    #[test]
    fn tasks_stay_with_their_owner_and_a_new_member_takes_a_fair_share() {
        let had = MemberTasks {
            active: set(&[("0", 0), ("0", 1), ("1", 0), ("1", 1)]),
            ..MemberTasks::default()
        };
        let none = MemberTasks::default();
        let members = [
            AssignorMember {
                id: "a",
                process_id: "p1",
                previous: &had,
            },
            AssignorMember {
                id: "b",
                process_id: "p2",
                previous: &none,
            },
        ];
        let t = tasks(2, 2);
        let out = assign(&members, &t, 0);
        every_task_once(&out, &t);
        assert_eq!(count(&out["a"].active), 2);
        assert_eq!(count(&out["b"].active), 2);
        // What `a` keeps is what it had.
        for (s, ps) in &out["a"].active {
            for p in ps {
                assert!(contains(&had.active, s, *p));
            }
        }
    }

    #[test]
    fn a_survivor_takes_every_task_of_a_member_that_left() {
        let had = MemberTasks {
            active: set(&[("0", 0), ("1", 0)]),
            ..MemberTasks::default()
        };
        let members = [AssignorMember {
            id: "a",
            process_id: "p1",
            previous: &had,
        }];
        let t = tasks(2, 2);
        let out = assign(&members, &t, 0);
        assert_eq!(count(&out["a"].active), 4);
    }

    #[test]
    fn standby_copies_go_to_other_processes_only() {
        let none = MemberTasks::default();
        let members = [
            AssignorMember {
                id: "a",
                process_id: "p1",
                previous: &none,
            },
            AssignorMember {
                id: "a2",
                process_id: "p1",
                previous: &none,
            },
            AssignorMember {
                id: "b",
                process_id: "p2",
                previous: &none,
            },
        ];
        let t = tasks(3, 0);
        let out = assign(&members, &t, 1);
        every_task_once(&out, &t);
        for p in 0..3 {
            let holders: Vec<&str> = out
                .iter()
                .filter(|(_, m)| contains(&m.active, "0", p) || contains(&m.standby, "0", p))
                .map(|(id, _)| if id.starts_with('a') { "p1" } else { "p2" })
                .collect();
            assert_eq!(holders.len(), 2, "task 0_{p}: {holders:?}");
            assert_ne!(holders[0], holders[1]);
        }
        // With one process there is nowhere to put a standby.
        let solo = assign(&members[..2], &t, 1);
        assert!(solo.values().all(|m| m.standby.is_empty()));
    }
}
