//! A Confluent-compatible schema registry served by kop (docs/schema-registry.md): the REST
//! API Confluent's serializers use, on its own HTTP listener (`schema_registry_listener`),
//! with the Kafka listeners' authentication and authorization, stored through the document
//! seam (so on Pulsar every kop instance shares it). With the `tenants` option each tenant has
//! its own subjects, schemas and ids, in its namespace's documents: the login selects the
//! tenant as on the Kafka listeners (`tenants.rs`).
//!
//! - `http.rs`    the listener: requests, HTTP basic, authorization
//! - `routes.rs`  paths to actions and the access each needs
//! - `service.rs` the actions (Confluent's semantics)
//! - `compat.rs`  schema types and compatibility levels (the `apache-avro` crate checks AVRO)
//! - `protobuf.rs` PROTOBUF schemas (protox, prost-reflect) and Confluent's Protobuf rules
//! - `json_schema.rs` JSON schemas and Confluent's JSON Schema rules
//! - `store.rs`   documents, ids and versions with compare-and-set
//! - `error.rs`   Confluent's error codes

pub mod compat;
pub mod error;
pub mod http;
pub mod json_schema;
pub mod protobuf;
pub mod routes;
pub mod service;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;

use crate::auth::Security;
use crate::config::{SecurityProtocol, ServerConfig};
use crate::storage::DocumentStore;
use crate::tenants::Tenants;

/// What the registry listener serves, over `docs` (the storage's documents); with `tenants`,
/// each tenant's registry over its own broker's documents.
pub fn served(
    config: &ServerConfig,
    docs: Arc<dyn DocumentStore>,
    security: Arc<Security>,
    tenants: Option<Arc<Tenants>>,
) -> http::Served {
    let require_auth = config.security_protocols().is_ok_and(|m| {
        m.values().any(|p| {
            matches!(
                p,
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
            )
        })
    });
    let registry = |docs| service::Registry {
        store: store::Store::new(docs),
    };
    let tenants = tenants.map(|tenants| http::TenantRegistries {
        registries: tenants
            .all()
            .map(|t| {
                let docs = t.broker.metadata().documents();
                (t.key.clone(), (registry(docs), t.security.clone()))
            })
            .collect::<HashMap<_, _>>(),
        tenants,
    });
    http::Served {
        registry: registry(docs),
        security,
        require_auth,
        tenants,
    }
}
