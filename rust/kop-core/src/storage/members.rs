//! The membership seam: the kop instances sharing one storage.
//!
//! On Pulsar members announce themselves through the backend (heartbeats on a members topic,
//! docs/pulsar-storage.md); `broker::cluster` computes who leads what from the live set. Local
//! storage has one user, this process (`SoleMember`).

use std::io;

use serde::{Deserialize, Serialize};

/// Where a member serves one of its listeners (Metadata answers with the endpoint of the
/// listener the request came in on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node_id: i32,
    pub endpoints: Vec<Endpoint>,
}

impl Member {
    pub fn endpoint(&self, listener: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.listener == listener)
    }
}

/// What `Membership::cluster_state` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterState {
    pub members: Vec<Member>,
    /// A counter that moves whenever stored metadata (topics, security) changed.
    pub metadata_version: u64,
}

pub trait Membership: Send + Sync {
    /// Announces this instance to the others sharing the storage (and keeps announcing it)
    /// and returns the live members.
    fn join(&self, me: &Member) -> io::Result<Vec<Member>>;
    /// The live members and the metadata counter; None on storage only this process uses.
    fn cluster_state(&self) -> io::Result<Option<ClusterState>>;
}

/// Storage only this process uses: no other member, nothing changes behind its back.
pub struct SoleMember;

impl Membership for SoleMember {
    fn join(&self, _me: &Member) -> io::Result<Vec<Member>> {
        Ok(Vec::new())
    }

    fn cluster_state(&self) -> io::Result<Option<ClusterState>> {
        Ok(None)
    }
}
