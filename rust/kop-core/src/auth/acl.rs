//! Kafka ACLs: bindings, filters and the decision rules of Kafka's `StandardAuthorizer`.

use serde::{Deserialize, Serialize};

use super::Principal;

/// Kafka's `AclOperation` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    Any = 1,
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

impl Operation {
    pub fn from_code(code: i8) -> Option<Operation> {
        use Operation::*;
        Some(match code {
            1 => Any,
            2 => All,
            3 => Read,
            4 => Write,
            5 => Create,
            6 => Delete,
            7 => Alter,
            8 => Describe,
            9 => ClusterAction,
            10 => DescribeConfigs,
            11 => AlterConfigs,
            12 => IdempotentWrite,
            13 => CreateTokens,
            14 => DescribeTokens,
            _ => return None,
        })
    }

    pub fn code(self) -> i8 {
        self as i8
    }

    /// Kafka's name (`READ`, `IDEMPOTENT_WRITE`, ...).
    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            Any => "ANY",
            All => "ALL",
            Read => "READ",
            Write => "WRITE",
            Create => "CREATE",
            Delete => "DELETE",
            Alter => "ALTER",
            Describe => "DESCRIBE",
            ClusterAction => "CLUSTER_ACTION",
            DescribeConfigs => "DESCRIBE_CONFIGS",
            AlterConfigs => "ALTER_CONFIGS",
            IdempotentWrite => "IDEMPOTENT_WRITE",
            CreateTokens => "CREATE_TOKENS",
            DescribeTokens => "DESCRIBE_TOKENS",
        }
    }

    /// Operations an ALLOW of `self` also allows (Kafka: READ/WRITE/DELETE/ALTER imply
    /// DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS).
    fn implies(self, wanted: Operation) -> bool {
        use Operation::*;
        self == wanted
            || self == All
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

/// Kafka's `ResourceType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Any = 1,
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
}

impl ResourceType {
    pub fn from_code(code: i8) -> Option<ResourceType> {
        use ResourceType::*;
        Some(match code {
            1 => Any,
            2 => Topic,
            3 => Group,
            4 => Cluster,
            5 => TransactionalId,
            6 => DelegationToken,
            7 => User,
            _ => return None,
        })
    }

    pub fn code(self) -> i8 {
        self as i8
    }

    pub fn name(self) -> &'static str {
        use ResourceType::*;
        match self {
            Any => "ANY",
            Topic => "TOPIC",
            Group => "GROUP",
            Cluster => "CLUSTER",
            TransactionalId => "TRANSACTIONAL_ID",
            DelegationToken => "DELEGATION_TOKEN",
            User => "USER",
        }
    }
}

/// The cluster resource's only name.
pub const CLUSTER_NAME: &str = "kafka-cluster";
pub const WILDCARD: &str = "*";

/// Kafka's `PatternType` codes (ANY and MATCH only appear in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PatternType {
    Any = 1,
    Match = 2,
    Literal = 3,
    Prefixed = 4,
}

impl PatternType {
    pub fn from_code(code: i8) -> Option<PatternType> {
        Some(match code {
            1 => PatternType::Any,
            2 => PatternType::Match,
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            _ => return None,
        })
    }
}

/// Kafka's `AclPermissionType` codes (ANY only in filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    Any = 1,
    Deny = 2,
    Allow = 3,
}

impl Permission {
    pub fn from_code(code: i8) -> Option<Permission> {
        Some(match code {
            1 => Permission::Any,
            2 => Permission::Deny,
            3 => Permission::Allow,
            _ => return None,
        })
    }
}

/// One ACL: who may (or may not) do what to which resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Whether this is a binding CreateAcls may store (no ANY/MATCH, a known principal form).
    pub fn validate(&self) -> Result<(), String> {
        if matches!(self.resource_type, ResourceType::Any) {
            return Err("resource type ANY is only for filters".into());
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err("pattern type must be LITERAL or PREFIXED".into());
        }
        if matches!(self.operation, Operation::Any) || matches!(self.permission, Permission::Any) {
            return Err("operation and permission ANY are only for filters".into());
        }
        if Principal::parse(&self.principal).is_none() {
            return Err(format!("principal {:?} is not TYPE:NAME", self.principal));
        }
        if self.resource_name.is_empty() {
            return Err("resource name must not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(format!("the cluster resource is named {CLUSTER_NAME}"));
        }
        Ok(())
    }

    /// Whether this binding's resource pattern covers the resource `name` of `rtype`.
    fn covers(&self, rtype: ResourceType, name: &str) -> bool {
        self.resource_type == rtype
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                _ => false,
            }
    }
}

/// A DescribeAcls / DeleteAcls filter; `None` fields match anything.
#[derive(Debug, Clone, Default)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern_type: Option<PatternType>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let name_ok = match (&self.resource_name, self.pattern_type) {
            (None, _) => true,
            // MATCH: bindings that would apply to this resource name (literal, wildcard,
            // prefixes of it).
            (Some(name), Some(PatternType::Match)) => match b.pattern_type {
                PatternType::Literal => b.resource_name == *name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.resource_name),
                _ => false,
            },
            (Some(name), _) => b.resource_name == *name,
        };
        let pattern_ok = match self.pattern_type {
            None | Some(PatternType::Any) | Some(PatternType::Match) => true,
            Some(p) => b.pattern_type == p,
        };
        name_ok
            && pattern_ok
            && self
                .resource_type
                .is_none_or(|t| t == ResourceType::Any || t == b.resource_type)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self
                .operation
                .is_none_or(|o| o == Operation::Any || o == b.operation)
            && self
                .permission
                .is_none_or(|p| p == Permission::Any || p == b.permission)
    }
}

/// Kafka's decision for one action: a matching DENY wins; else a matching ALLOW allows;
/// else denied (`allow.everyone.if.no.acl.found` is false).
pub fn decide(
    acls: &[AclBinding],
    principal: &Principal,
    host: &str,
    op: Operation,
    rtype: ResourceType,
    name: &str,
) -> bool {
    let who = principal.to_string();
    let wildcard_principal = format!("{}:*", principal.principal_type);
    let mut allowed = false;
    for b in acls {
        if !b.covers(rtype, name)
            || !(b.principal == who || b.principal == wildcard_principal)
            || !(b.host == WILDCARD || b.host == host)
        {
            continue;
        }
        match b.permission {
            Permission::Deny if b.operation == op || b.operation == Operation::All => return false,
            Permission::Allow if b.operation.implies(op) => allowed = true,
            _ => {}
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        rtype: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        perm: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: rtype,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn literal_prefixed_wildcard_deny_and_implication() {
        use Operation::*;
        use PatternType::*;
        use Permission::*;
        use ResourceType::*;
        let alice = Principal::user("alice");
        let bob = Principal::user("bob");
        let acls = vec![
            acl(Topic, "orders", Literal, "User:alice", Write, Allow),
            acl(Topic, "logs-", Prefixed, "User:alice", Read, Allow),
            acl(Topic, "logs-secret", Literal, "User:alice", Read, Deny),
            acl(Group, "*", Literal, "User:*", Read, Allow),
            acl(Topic, "public", Literal, "User:*", All, Allow),
        ];
        let d = |p: &Principal, op, rt, n: &str| decide(&acls, p, "127.0.0.1", op, rt, n);
        assert!(d(&alice, Write, Topic, "orders"));
        assert!(d(&alice, Describe, Topic, "orders")); // WRITE implies DESCRIBE
        assert!(!d(&alice, Read, Topic, "orders"));
        assert!(!d(&bob, Write, Topic, "orders"));
        assert!(d(&alice, Read, Topic, "logs-app"));
        assert!(!d(&alice, Read, Topic, "logs-secret")); // DENY wins
        assert!(!d(&alice, Read, Topic, "logs")); // not under the prefix
        assert!(d(&bob, Read, Group, "any-group"));
        assert!(!d(&bob, Delete, Group, "any-group"));
        assert!(d(&bob, Delete, Topic, "public"));
        assert!(!d(&bob, Read, Topic, "unlisted")); // no ACL → denied
        let host_acl = vec![AclBinding {
            host: "10.0.0.1".into(),
            ..acl(Topic, "t", Literal, "User:bob", Read, Allow)
        }];
        assert!(!decide(&host_acl, &bob, "127.0.0.1", Read, Topic, "t"));
        assert!(decide(&host_acl, &bob, "10.0.0.1", Read, Topic, "t"));
    }

    #[test]
    fn filters() {
        use PatternType::*;
        let b = acl(
            ResourceType::Topic,
            "logs-",
            Prefixed,
            "User:alice",
            Operation::Read,
            Permission::Allow,
        );
        assert!(AclFilter::default().matches(&b));
        let f = AclFilter {
            resource_name: Some("logs-app".into()),
            pattern_type: Some(Match),
            ..Default::default()
        };
        assert!(f.matches(&b));
        let f = AclFilter {
            resource_name: Some("logs-app".into()),
            pattern_type: Some(Literal),
            ..Default::default()
        };
        assert!(!f.matches(&b));
        let f = AclFilter {
            principal: Some("User:bob".into()),
            ..Default::default()
        };
        assert!(!f.matches(&b));
        assert!(b.validate().is_ok());
        let bad = AclBinding {
            pattern_type: Match,
            ..b
        };
        assert!(bad.validate().is_err());
    }
}
