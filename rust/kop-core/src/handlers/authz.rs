//! The one call handlers make to authorize: Kafka's mapping of APIs to operations on
//! resources lives at the call sites; the decision (allow-all, deny-all, ACLs, a cached Python
//! hook) in `auth::authorizer`.
//!
//! Group handlers use it like the others, e.g.
//! `allowed(ctx, "JoinGroup", Operation::Read, ResourceType::Group, &group_id).await`.

pub use crate::auth::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::auth::authorizer::{AuthorizerKind, HookContext};
use crate::auth::SecurityProtocol;

use super::RequestContext;

fn protocol_name(p: SecurityProtocol) -> &'static str {
    match p {
        SecurityProtocol::Plaintext => "PLAINTEXT",
        SecurityProtocol::Ssl => "SSL",
        SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
        SecurityProtocol::SaslSsl => "SASL_SSL",
    }
}

/// The hook's view of who asks.
pub fn hook_context(ctx: &RequestContext, api: &str) -> HookContext {
    HookContext {
        principal: ctx.principal.clone(),
        listener: ctx.listener.name.clone(),
        security_protocol: protocol_name(ctx.security.protocol(&ctx.listener.name)),
        client_host: ctx.peer.ip(),
        client_port: ctx.peer.port(),
        api: api.to_string(),
        tenant: ctx.security.tenant.clone(),
    }
}

/// True when every action is allowed without asking (allow-all): handlers may skip work.
pub fn allow_all(ctx: &RequestContext) -> bool {
    ctx.security.authorizer.kind == AuthorizerKind::AllowAll
}

/// Decides all actions of one request at once (one hook crossing at most).
pub async fn authorize(
    ctx: &RequestContext,
    api: &str,
    actions: &[(Operation, ResourceType, &str)],
) -> Vec<bool> {
    decide(ctx, api, actions, |_| true).await
}

/// `authorize`, logging a denial only for the actions `log_if_denied` selects (by index):
/// Kafka does not log what only filters a listing or probes `authorized_operations`.
pub async fn decide(
    ctx: &RequestContext,
    api: &str,
    actions: &[(Operation, ResourceType, &str)],
    log_if_denied: impl Fn(usize) -> bool,
) -> Vec<bool> {
    if allow_all(ctx) {
        return vec![true; actions.len()];
    }
    let decisions = ctx
        .security
        .authorizer
        .authorize(&hook_context(ctx, api), actions)
        .await;
    for (i, (&(op, rt, name), ok)) in actions.iter().zip(&decisions).enumerate() {
        if !ok && log_if_denied(i) {
            tracing::info!(principal = %ctx.principal, peer = %ctx.peer, api, operation = op.name(), resource_type = rt.name(), resource = name, "denied");
        }
    }
    decisions
}

/// One action.
pub async fn allowed(
    ctx: &RequestContext,
    api: &str,
    op: Operation,
    rtype: ResourceType,
    name: &str,
) -> bool {
    authorize(ctx, api, &[(op, rtype, name)])
        .await
        .first()
        .copied()
        .unwrap_or(false)
}

/// One action on the cluster resource.
pub async fn cluster_allowed(ctx: &RequestContext, api: &str, op: Operation) -> bool {
    allowed(ctx, api, op, ResourceType::Cluster, CLUSTER_NAME).await
}

/// The names among `names` on which `op` is denied (empty at once under allow-all).
pub async fn denied<'a>(
    ctx: &RequestContext,
    api: &str,
    op: Operation,
    rtype: ResourceType,
    names: impl IntoIterator<Item = &'a str>,
) -> std::collections::HashSet<String> {
    if allow_all(ctx) {
        return Default::default();
    }
    let mut unique: Vec<&str> = names.into_iter().collect();
    unique.sort_unstable();
    unique.dedup();
    let actions: Vec<_> = unique.iter().map(|n| (op, rtype, *n)).collect();
    let decisions = authorize(ctx, api, &actions).await;
    unique
        .into_iter()
        .zip(decisions)
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n.to_string())
        .collect()
}

/// One action on a consumer group (JoinGroup/SyncGroup/Heartbeat/LeaveGroup/OffsetCommit/
/// OffsetFetch → READ, DescribeGroups → DESCRIBE, DeleteGroups/OffsetDelete → DELETE, as
/// Kafka); deny with `KafkaError::GroupAuthorizationFailed`.
pub async fn group_allowed(ctx: &RequestContext, api: &str, op: Operation, group: &str) -> bool {
    allowed(ctx, api, op, ResourceType::Group, group).await
}

/// A group heartbeat of the KIP-848 protocols (consumer and share groups): READ on the group
/// and DESCRIBE on every subscribed topic, in one decision, answered as Kafka does
/// (GROUP_AUTHORIZATION_FAILED, or TOPIC_AUTHORIZATION_FAILED naming the topics).
pub async fn group_heartbeat_allowed<'a>(
    ctx: &RequestContext,
    api: &str,
    group: &str,
    topics: impl IntoIterator<Item = &'a str>,
) -> Result<(), (crate::error::KafkaError, String)> {
    use crate::error::KafkaError;
    if allow_all(ctx) {
        return Ok(());
    }
    let mut topics: Vec<&str> = topics.into_iter().collect();
    topics.sort_unstable();
    topics.dedup();
    let mut actions = vec![(Operation::Read, ResourceType::Group, group)];
    actions.extend(
        topics
            .iter()
            .map(|t| (Operation::Describe, ResourceType::Topic, *t)),
    );
    let decisions = authorize(ctx, api, &actions).await;
    if !decisions.first().copied().unwrap_or(false) {
        let e = KafkaError::GroupAuthorizationFailed;
        return Err((e, e.to_string()));
    }
    let denied: Vec<&str> = topics
        .iter()
        .zip(decisions.iter().skip(1))
        .filter(|(_, ok)| !**ok)
        .map(|(t, _)| *t)
        .collect();
    if denied.is_empty() {
        return Ok(());
    }
    let names = denied.join(", ");
    Err((
        KafkaError::TopicAuthorizationFailed,
        format!("The following topics cannot be described: [{names}]"),
    ))
}

/// The operations Kafka reports in `*_authorized_operations`, per resource type: Kafka 4.1's
/// `AclEntry.supportedOperations` (with no authorizer, all of them).
pub const TOPIC_OPERATIONS: [Operation; 8] = [
    Operation::Read,
    Operation::Write,
    Operation::Create,
    Operation::Delete,
    Operation::Alter,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];
pub const CLUSTER_OPERATIONS: [Operation; 7] = [
    Operation::Create,
    Operation::Alter,
    Operation::Describe,
    Operation::ClusterAction,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
    Operation::IdempotentWrite,
];
pub const GROUP_OPERATIONS: [Operation; 5] = [
    Operation::Read,
    Operation::Delete,
    Operation::Describe,
    Operation::DescribeConfigs,
    Operation::AlterConfigs,
];

/// The actions of one request, collected before asking: each asked once, and each either
/// required (a denial is logged) or a probe for `authorized_operations` (not logged, as
/// Kafka's logIfDenied=false).
#[derive(Default)]
pub struct Actions {
    list: Vec<(Operation, ResourceType, String)>,
    required: Vec<bool>,
    seen: std::collections::HashSet<(Operation, ResourceType, String)>,
}

impl Actions {
    pub fn require(&mut self, op: Operation, rtype: ResourceType, name: &str) {
        self.add(op, rtype, name, true);
    }

    /// Probes every operation of `ops` on a resource.
    pub fn probe(&mut self, ops: &[Operation], rtype: ResourceType, name: &str) {
        for &op in ops {
            self.add(op, rtype, name, false);
        }
    }

    fn add(&mut self, op: Operation, rtype: ResourceType, name: &str, required: bool) {
        let key = (op, rtype, name.to_string());
        if self.seen.insert(key.clone()) {
            self.list.push(key);
            self.required.push(required);
        } else if required {
            let i = self.list.iter().position(|k| *k == key).expect("seen");
            self.required[i] = true;
        }
    }

    /// Decides them all at once (one hook crossing at most).
    pub async fn decide(self, ctx: &RequestContext, api: &str) -> Decisions {
        if allow_all(ctx) {
            return Decisions {
                by_name: Default::default(),
                everything: true,
            };
        }
        let asked: Vec<_> = self
            .list
            .iter()
            .map(|(o, r, n)| (*o, *r, n.as_str()))
            .collect();
        let required = &self.required;
        let decisions = decide(ctx, api, &asked, |i| required[i]).await;
        let mut by_name: std::collections::HashMap<String, Vec<(Operation, ResourceType, bool)>> =
            Default::default();
        for ((op, rtype, name), ok) in self.list.into_iter().zip(decisions) {
            by_name.entry(name).or_default().push((op, rtype, ok));
        }
        Decisions {
            by_name,
            everything: false,
        }
    }
}

/// The answers to `Actions`; anything not asked is denied (unless everything is allowed).
pub struct Decisions {
    by_name: std::collections::HashMap<String, Vec<(Operation, ResourceType, bool)>>,
    everything: bool,
}

impl Decisions {
    pub fn allowed(&self, op: Operation, rtype: ResourceType, name: &str) -> bool {
        self.everything
            || self
                .by_name
                .get(name)
                .is_some_and(|d| d.iter().any(|&(o, r, ok)| o == op && r == rtype && ok))
    }

    /// Kafka's bit field of the allowed operations among `ops` (all of them under allow-all).
    pub fn operations(&self, ops: &[Operation], rtype: ResourceType, name: &str) -> i32 {
        operation_bits(
            ops.iter()
                .copied()
                .filter(|&op| self.allowed(op, rtype, name)),
        )
    }
}

/// Kafka's bit field of operations (bit n = the operation with code n).
pub fn operation_bits(ops: impl IntoIterator<Item = Operation>) -> i32 {
    ops.into_iter().fold(0, |bits, op| bits | (1 << op.code()))
}

/// For each group: whether `required` is allowed and, when `with_ops`, the bit field of the
/// allowed `GROUP_OPERATIONS` (0 otherwise). One decision call for all groups.
pub async fn groups_with_operations(
    ctx: &RequestContext,
    api: &str,
    required: Operation,
    groups: &[&str],
    with_ops: bool,
) -> Vec<(bool, i32)> {
    if allow_all(ctx) {
        let bits = if with_ops {
            operation_bits(GROUP_OPERATIONS)
        } else {
            0
        };
        return vec![(true, bits); groups.len()];
    }
    let per_group = if with_ops {
        1 + GROUP_OPERATIONS.len()
    } else {
        1
    };
    let mut actions = Vec::with_capacity(groups.len() * per_group);
    for &g in groups {
        actions.push((required, ResourceType::Group, g));
        if with_ops {
            actions.extend(
                GROUP_OPERATIONS
                    .iter()
                    .map(|&op| (op, ResourceType::Group, g)),
            );
        }
    }
    // Only the required operation is logged when denied, not the probes.
    let decisions = decide(ctx, api, &actions, |i| i % per_group == 0).await;
    decisions
        .chunks(per_group)
        .map(|d| {
            let bits = operation_bits(
                GROUP_OPERATIONS
                    .iter()
                    .zip(d.iter().skip(1))
                    .filter(|(_, ok)| **ok)
                    .map(|(op, _)| *op),
            );
            (d.first().copied().unwrap_or(false), bits)
        })
        .collect()
}
