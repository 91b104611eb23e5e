//! Calls between kop instances (`broker::peers`) against a real server on a SASL listener with
//! Kafka ACLs: kop authenticates as the configured user with PLAIN or SCRAM and is authorized
//! as that user (WriteTxnMarkers needs CLUSTER_ACTION); a wrong password or a user without the
//! right gets no marker written.

use crate::common::*;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kop_core::broker::peers::Peers;
use kop_core::error::KafkaError;
use kop_core::storage::Endpoint;
use kop_core::{RunningServer, ServerConfig};

fn start_secure() -> RunningServer {
    let json = r#"{"listeners": ["SASL_PLAINTEXT://127.0.0.1:0"], "storage": "memory://", "io_threads": 2,
        "sasl_users": ["kop:kop-pw", "alice:alice-pw"], "authorizer": "acl",
        "super_users": ["User:kop"], "failed_authentication_delay_ms": 0}"#;
    RunningServer::start(ServerConfig::from_json(json).unwrap()).unwrap()
}

fn peers(mechanism: &str, user: &str, password: &str) -> Peers {
    let json = format!(
        r#"{{"listeners": ["SASL_PLAINTEXT://127.0.0.1:0"], "node_id": 7,
            "inter_instance_sasl_mechanism": "{mechanism}",
            "inter_instance_sasl_user": "{user}", "inter_instance_sasl_password": "{password}"}}"#
    );
    Peers::new(&ServerConfig::from_json(&json).unwrap())
}

fn abort_marker(topic: &str) -> WriteTxnMarkersRequest {
    WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(42))
        .with_producer_epoch(0)
        .with_transaction_result(false)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_indexes(vec![0])])])
}

#[test]
fn peer_calls_authenticate_and_are_authorized_as_the_configured_user() {
    let server = start_secure();
    let endpoint = Endpoint {
        listener: "SASL_PLAINTEXT".into(),
        host: "127.0.0.1".into(),
        port: i32::from(port(&server)),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let code = |p: &Peers, topic: &str| -> Result<i16, KafkaError> {
        let resp = rt.block_on(p.call(1, &endpoint, &abort_marker(topic), 1))?;
        Ok(resp.markers[0].topics[0].partitions[0].error_code)
    };
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let kop = peers(mechanism, "kop", "kop-pw");
        // Authorized: the partition does not exist (no topic yet), so that is the answer.
        assert_eq!(
            code(&kop, "nothing-here"),
            Ok(KafkaError::UnknownTopicOrPartition.code()),
            "{mechanism}"
        );
        // The connection is kept and reused.
        assert_eq!(
            code(&kop, "nothing-here"),
            Ok(KafkaError::UnknownTopicOrPartition.code())
        );
        let alice = peers(mechanism, "alice", "alice-pw");
        assert_eq!(
            code(&alice, "nothing-here"),
            Ok(KafkaError::ClusterAuthorizationFailed.code()),
            "{mechanism}"
        );
        let wrong = peers(mechanism, "kop", "not-the-password");
        assert_eq!(
            code(&wrong, "nothing-here"),
            Err(KafkaError::CoordinatorNotAvailable),
            "{mechanism}"
        );
    }
    // No credentials for a SASL listener: refused before anything is sent.
    let none = Peers::new(
        &ServerConfig::from_json(r#"{"listeners": ["SASL_PLAINTEXT://127.0.0.1:0"]}"#).unwrap(),
    );
    assert_eq!(
        code(&none, "nothing-here"),
        Err(KafkaError::CoordinatorNotAvailable)
    );
}
