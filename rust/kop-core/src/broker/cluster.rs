//! The kop instances sharing one storage (one Pulsar namespace): the live member set.
//!
//! Members announce themselves through the storage backend (on Pulsar: heartbeats on a members
//! topic, docs/pulsar-storage.md). Who leads what among them is `broker::leadership`.
//!
//! On local storage the only member is this instance.

use std::sync::Arc;

use parking_lot::RwLock;

// The member types are the storage's (the membership seam); named here too because much code
// reaches them through the cluster.
use crate::storage::{Endpoint, Member};

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
