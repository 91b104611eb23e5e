//! Which kop instance leads what, when several share one Pulsar namespace.
//!
//! Members announce themselves through the storage backend (on Pulsar: heartbeats on a members
//! topic, docs/pulsar-storage.md). The leader of a partition is the rendezvous choice
//! (highest hash of member and partition) over the live members: every instance computes the
//! same answer from the same member set, and a join or a leave moves only the partitions the
//! member wins or held. A stale view is safe: the partition's exclusive Pulsar producer lets one
//! instance append, and an instance that does not lead a partition answers
//! NOT_LEADER_OR_FOLLOWER, so clients refresh their Metadata.
//!
//! On local storage the only member is this instance.

use std::sync::Arc;

use parking_lot::RwLock;

// The member types are the storage's (the membership seam); named here too because much code
// reaches them through the cluster.
pub use crate::storage::{Endpoint, Member};

/// A group shard (`group::shard_of`) is led like partition `shard` of this topic: its leader
/// coordinates the shard's groups, as in Kafka.
pub const GROUPS_TOPIC: &str = "__consumer_offsets";

pub struct Cluster {
    me: Member,
    /// Live members by node id, this instance always among them.
    members: RwLock<Arc<Vec<Member>>>,
}

impl Cluster {
    pub fn new(me: Member) -> Cluster {
        let members = RwLock::new(Arc::new(vec![me.clone()]));
        Cluster { me, members }
    }

    pub fn node_id(&self) -> i32 {
        self.me.node_id
    }

    pub fn me(&self) -> &Member {
        &self.me
    }

    pub fn members(&self) -> Arc<Vec<Member>> {
        self.members.read().clone()
    }

    /// Replaces the live member set (this instance stays in it, as itself); true if it changed.
    pub fn set_members(&self, live: Vec<Member>) -> bool {
        let mut next: Vec<Member> = live
            .into_iter()
            .filter(|m| m.node_id != self.me.node_id)
            .collect();
        next.push(self.me.clone());
        next.sort_by_key(|m| m.node_id);
        next.dedup_by_key(|m| m.node_id);
        let mut current = self.members.write();
        if **current == next {
            return false;
        }
        *current = Arc::new(next);
        true
    }

    /// The node that leads `partition` of `topic`.
    pub fn leader(&self, topic: &str, partition: i32) -> i32 {
        leader_among(&self.members.read(), topic, partition)
    }

    pub fn leads(&self, topic: &str, partition: i32) -> bool {
        self.leader(topic, partition) == self.me.node_id
    }

    /// The node coordinating the groups of `shard`.
    pub fn group_coordinator(&self, shard: usize) -> i32 {
        self.leader(GROUPS_TOPIC, shard as i32)
    }

    pub fn leads_group_shard(&self, shard: usize) -> bool {
        self.group_coordinator(shard) == self.me.node_id
    }

    /// The controller Metadata names: the live member with the lowest node id (kop has no
    /// controller role; admin clients only need a live broker there).
    pub fn controller(&self) -> i32 {
        self.members
            .read()
            .first()
            .map_or(self.me.node_id, |m| m.node_id)
    }

    /// A live member's endpoint for `listener`.
    pub fn endpoint(&self, node_id: i32, listener: &str) -> Option<Endpoint> {
        self.members
            .read()
            .iter()
            .find(|m| m.node_id == node_id)
            .and_then(|m| m.endpoint(listener).cloned())
    }
}

pub fn leader_among(members: &[Member], topic: &str, partition: i32) -> i32 {
    members
        .iter()
        .max_by_key(|m| (weight(m.node_id, topic, partition), m.node_id))
        .map_or(-1, |m| m.node_id)
}

/// A stable 64-bit hash of (node, topic, partition): FNV-1a, then a finalizer so that nearby
/// node ids spread over the whole range.
fn weight(node_id: i32, topic: &str, partition: i32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = node_id
        .to_be_bytes()
        .into_iter()
        .chain(topic.bytes())
        .chain(partition.to_be_bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node_id: i32) -> Member {
        Member {
            node_id,
            endpoints: vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + node_id,
            }],
        }
    }

    #[test]
    fn partitions_spread_over_members_and_only_a_leavers_move() {
        let three: Vec<Member> = (1..=3).map(member).collect();
        let two: Vec<Member> = vec![member(1), member(3)];
        let mut counts = [0usize; 4];
        let mut moved = 0;
        for p in 0..300 {
            let before = leader_among(&three, "orders", p);
            counts[before as usize] += 1;
            let after = leader_among(&two, "orders", p);
            if before != 2 {
                assert_eq!(
                    before, after,
                    "partition {p} moved though its leader stayed"
                );
            } else {
                moved += 1;
            }
        }
        assert_eq!(moved, counts[2]);
        for (node, &n) in counts.iter().enumerate().skip(1) {
            assert!((60..=140).contains(&n), "node {node} leads {n} of 300");
        }
    }

    #[test]
    fn the_member_set_always_holds_this_instance() {
        let c = Cluster::new(member(2));
        assert!(c.leads("t", 0));
        assert!(c.set_members(vec![member(1), member(3)]));
        assert!(!c.set_members(vec![member(3), member(1), member(2)]));
        assert_eq!(
            c.members().iter().map(|m| m.node_id).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(c.controller(), 1);
        assert_eq!(c.endpoint(3, "PLAINTEXT").unwrap().port, 9003);
        assert_eq!(c.endpoint(3, "SSL"), None);
        assert!(c.set_members(vec![]));
        assert!(c.leads("t", 7));
    }
}
