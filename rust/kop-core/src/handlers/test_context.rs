//! A `RequestContext` for unit tests: a broker on memory storage, reached without a socket.
//! Handler tests call the handler function with a decoded request and look at the response
//! struct, e.g.
//!
//! ```ignore
//! let ctx = RequestContext::builder().config(r#""authorizer": "acl""#).principal("User:alice").build();
//! ctx.allow("User:alice", Operation::Describe, ResourceType::Topic, "t");
//! let resp = metadata::handle(&ctx, &ctx.header(ApiKey::Metadata, 12), req).await;
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader};
use tokio::sync::watch;

use super::{ListenerInfo, RequestContext};
use crate::auth::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};
use crate::auth::{Principal, Security};
use crate::broker::{Broker, Topic};
use crate::config::ServerConfig;
use crate::limits::ConnectionLimits;
use crate::shutdown::ShutdownSignal;
use crate::storage::{Endpoint, Member};

/// The listener every test context was "reached" through.
pub const LISTENER: &str = "PLAINTEXT";
pub const HOST: &str = "127.0.0.1";
pub const PORT: i32 = 9092;

/// Builds a [`TestContext`]; every part has a default (allow-all, `User:ANONYMOUS` from
/// 127.0.0.1:50000, memory storage).
pub struct ContextBuilder {
    /// Extra keys of the server's JSON config, e.g. `"authorizer": "acl"`.
    config: String,
    principal: Principal,
    peer: SocketAddr,
}

/// A request context that owns the "server is stopping" sender (so waiting handlers do not
/// see a stop), and a few helpers to set the broker up. Derefs to the `RequestContext`.
pub struct TestContext {
    ctx: RequestContext,
    _shutdown: watch::Sender<bool>,
}

impl RequestContext {
    /// A context over a fresh memory-storage broker (see [`ContextBuilder`]).
    pub fn builder() -> ContextBuilder {
        ContextBuilder {
            config: String::new(),
            principal: Principal::anonymous(),
            peer: SocketAddr::from(([127, 0, 0, 1], 50000)),
        }
    }
}

impl ContextBuilder {
    /// Extra config keys as JSON object members (`"num_partitions": 3, "authorizer": "acl"`).
    pub fn config(mut self, json_members: &str) -> Self {
        self.config = json_members.to_string();
        self
    }

    /// Who sends the requests, `TYPE:NAME`.
    pub fn principal(mut self, principal: &str) -> Self {
        self.principal = Principal::parse(principal).expect("TYPE:NAME");
        self
    }

    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    pub fn build(self) -> TestContext {
        let extra = if self.config.is_empty() {
            String::new()
        } else {
            format!(", {}", self.config)
        };
        let json = format!(
            r#"{{"listeners": ["{LISTENER}://{HOST}:{PORT}"], "storage": "memory://"{extra}}}"#
        );
        let config = ServerConfig::from_json(&json).expect("test config");
        let me = Member {
            node_id: config.node_id,
            endpoints: vec![Endpoint {
                listener: LISTENER.into(),
                host: HOST.into(),
                port: PORT,
            }],
        };
        let broker = Arc::new(Broker::open(config.clone(), None, me).expect("memory broker"));
        let security =
            Arc::new(Security::new(&config, Some(broker.metadata()), None).expect("security"));
        let (shutdown_tx, shutdown) = ShutdownSignal::new();
        TestContext {
            ctx: RequestContext {
                limits: Arc::new(ConnectionLimits::new(&config)),
                broker,
                listener: Arc::new(ListenerInfo {
                    name: LISTENER.into(),
                    advertised_host: HOST.into(),
                    advertised_port: PORT,
                }),
                peer: self.peer,
                connection_id: 1,
                shutdown,
                security,
                principal: self.principal,
                mute: Default::default(),
            },
            _shutdown: shutdown_tx,
        }
    }
}

impl Deref for TestContext {
    type Target = RequestContext;

    fn deref(&self) -> &RequestContext {
        &self.ctx
    }
}

impl TestContext {
    /// The header of a request of `api` at `version`.
    pub fn header(&self, api: ApiKey, version: i16) -> RequestHeader {
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
    }

    /// Creates a topic with default configs.
    pub fn topic(&self, name: &str, partitions: i32) -> Arc<Topic> {
        self.broker
            .create_topic(name, partitions, BTreeMap::new())
            .expect("create topic")
    }

    /// An ALLOW ACL for `principal` (`TYPE:NAME`) on a literal resource, from any host (held
    /// in memory only: nothing is stored).
    pub fn allow(&self, principal: &str, operation: Operation, rtype: ResourceType, name: &str) {
        self.security.authorizer.add_acls(&[AclBinding {
            resource_type: rtype,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission: Permission::Allow,
        }]);
        self.security.authorizer.invalidate();
    }
}
