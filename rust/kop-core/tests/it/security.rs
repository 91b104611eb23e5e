//! In-process security tests over the wire: a SCRAM-SHA-512 exchange computed client-side,
//! the SASL state rules, and ACLs created over the wire, enforced and kept across a restart.

use crate::common::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kop_core::{RunningServer, ServerConfig};
use sha2::{Digest, Sha512};

fn start_secure(storage: &str) -> RunningServer {
    let json = format!(
        r#"{{"listeners": ["SASL_PLAINTEXT://127.0.0.1:0"], "storage": "{storage}", "io_threads": 2,
            "sasl_users": ["admin:admin-pw", "alice:alice-pw"], "authorizer": "acl",
            "super_users": ["User:admin"], "failed_authentication_delay_ms": 0}}"#
    );
    RunningServer::start(ServerConfig::from_json(&json).unwrap()).unwrap()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn hmac512(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha512>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn authenticate(c: &mut Client, token: &[u8]) -> SaslAuthenticateResponse {
    c.call(
        &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::copy_from_slice(token)),
        2,
    )
}

/// SCRAM-SHA-512 as a client does it (RFC 5802); returns the final SaslAuthenticate error.
fn scram_login(c: &mut Client, user: &str, password: &str) -> i16 {
    let hs: SaslHandshakeResponse = c.call(
        &SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-512")),
        1,
    );
    assert_eq!(hs.error_code, 0);
    let client_nonce = "fyko+d2lbbFgONRv9qkxdawL";
    let first_bare = format!("n={user},r={client_nonce}");
    let r1 = authenticate(c, format!("n,,{first_bare}").as_bytes());
    if r1.error_code != 0 {
        return r1.error_code;
    }
    let server_first = String::from_utf8(r1.auth_bytes.to_vec()).unwrap();
    let mut nonce = "";
    let mut salt = Vec::new();
    let mut iterations = 0u32;
    for part in server_first.split(',') {
        match part.split_at(2) {
            ("r=", v) => nonce = v,
            ("s=", v) => salt = B64.decode(v).unwrap(),
            ("i=", v) => iterations = v.parse().unwrap(),
            _ => {}
        }
    }
    assert!(nonce.starts_with(client_nonce) && iterations >= 4096);
    let mut salted = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, iterations, &mut salted);
    let client_key = hmac512(&salted, b"Client Key");
    let stored_key = Sha512::digest(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hmac512(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let r2 = authenticate(
        c,
        format!("{without_proof},p={}", B64.encode(proof)).as_bytes(),
    );
    if r2.error_code == 0 {
        let server_key = hmac512(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            B64.encode(hmac512(&server_key, auth_message.as_bytes()))
        );
        assert_eq!(r2.auth_bytes.as_ref(), expected.as_bytes());
    }
    r2.error_code
}

#[test]
fn scram_sha512_login_and_failures() {
    let server = start_secure("memory://");
    let port = port(&server);
    let mut c = Client::connect(port);
    assert_eq!(scram_login(&mut c, "alice", "alice-pw"), 0);
    let md: MetadataResponse = c.call(&MetadataRequest::default(), 12);
    assert!(md.topics.is_empty());
    // a second SaslAuthenticate after success: ILLEGAL_SASL_STATE
    assert_eq!(authenticate(&mut c, b"x").error_code, 34);

    let mut bad = Client::connect(port);
    assert_eq!(scram_login(&mut bad, "alice", "wrong"), 58);
    assert!(
        bad.read_raw().is_none(),
        "closed after a failed authentication"
    );

    let mut unknown = Client::connect(port);
    assert_eq!(scram_login(&mut unknown, "mallory", "x"), 58);

    // before authentication only ApiVersions and SaslHandshake are served
    let mut early = Client::connect(port);
    let av: ApiVersionsResponse = early.call(&ApiVersionsRequest::default(), 3);
    for key in [
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
        ApiKey::CreateAcls,
    ] {
        assert!(
            av.api_keys.iter().any(|k| k.api_key == key as i16),
            "{key:?}"
        );
    }
    let req = MetadataRequest::default();
    let mut body = bytes::BytesMut::new();
    use kafka_protocol::protocol::Encodable;
    RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(12)
        .with_correlation_id(7)
        .encode(&mut body, ApiKey::Metadata.request_header_version(12))
        .unwrap();
    req.encode(&mut body, 12).unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    early.send_raw(&frame);
    assert!(early.read_raw().is_none(), "closed without an answer");
}

fn produce_code(c: &mut Client, topic_name: &str) -> i16 {
    produce(c, topic_name, 0, records(&[b"v"], 1000, (-1, -1, -1))).error_code
}

#[test]
fn acls_over_the_wire_are_enforced_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", dir.path().display());
    {
        let server = start_secure(&storage);
        let mut admin = Client::connect(port(&server));
        assert_eq!(scram_login(&mut admin, "admin", "admin-pw"), 0);
        assert_eq!(create_topic(&mut admin, "orders", 1, &[]), 0);
        let mut alice = Client::connect(port(&server));
        assert_eq!(scram_login(&mut alice, "alice", "alice-pw"), 0);
        assert_eq!(produce_code(&mut alice, "orders"), 29);
        // alice may not manage ACLs
        let creation = AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("ord"))
            .with_resource_pattern_type(4)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(4)
            .with_permission_type(3);
        let req = CreateAclsRequest::default().with_creations(vec![creation.clone()]);
        let denied: CreateAclsResponse = alice.call(&req, 3);
        assert_eq!(denied.results[0].error_code, 31);
        let created: CreateAclsResponse = admin.call(&req, 3);
        assert_eq!(created.results[0].error_code, 0);
        assert_eq!(produce_code(&mut alice, "orders"), 0);
        // a bad binding is INVALID_REQUEST
        let bad = CreateAclsRequest::default()
            .with_creations(vec![creation.with_resource_pattern_type(2)]);
        let r: CreateAclsResponse = admin.call(&bad, 3);
        assert_eq!(r.results[0].error_code, 42);
    }
    let server = start_secure(&storage);
    let mut admin = Client::connect(port(&server));
    assert_eq!(scram_login(&mut admin, "admin", "admin-pw"), 0);
    let described: DescribeAclsResponse = admin.call(
        &DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(1)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1),
        3,
    );
    assert_eq!(described.error_code, 0);
    assert_eq!(described.resources.len(), 1);
    assert_eq!(described.resources[0].resource_name.as_str(), "ord");
    let mut alice = Client::connect(port(&server));
    assert_eq!(scram_login(&mut alice, "alice", "alice-pw"), 0);
    assert_eq!(produce_code(&mut alice, "orders"), 0);
    let deleted: DeleteAclsResponse = admin.call(
        &DeleteAclsRequest::default().with_filters(vec![
            delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s("ord")))
                .with_pattern_type_filter(4)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1),
        ]),
        3,
    );
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(produce_code(&mut alice, "orders"), 29);
}

fn allow_alice(admin: &mut Client, resource_type: i8, name: &str, operation: i8) {
    let creation = AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_resource_pattern_type(3)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(operation)
        .with_permission_type(3);
    let r: CreateAclsResponse = admin.call(
        &CreateAclsRequest::default().with_creations(vec![creation]),
        3,
    );
    assert_eq!(r.results[0].error_code, 0);
}

/// (topic authorized operations, cluster authorized operations) from Metadata v10, and the
/// cluster's from DescribeCluster.
fn authorized_operations(c: &mut Client, topic_name: &str) -> (i32, i32, i32) {
    let md: MetadataResponse = c.call(
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
            )
            .with_name(Some(topic(topic_name)))]))
            .with_include_cluster_authorized_operations(true)
            .with_include_topic_authorized_operations(true),
        10,
    );
    let dc: DescribeClusterResponse = c.call(
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
        1,
    );
    let cluster_ops = if dc.error_code == 0 {
        dc.cluster_authorized_operations
    } else {
        dc.error_code as i32
    };
    (
        md.topics[0].topic_authorized_operations,
        md.cluster_authorized_operations,
        cluster_ops,
    )
}

#[test]
fn authorized_operations_follow_acls() {
    const READ: i8 = 3;
    const DESCRIBE: i8 = 8;
    const ALTER_CONFIGS: i8 = 11;
    let server = start_secure("memory://");
    let mut admin = Client::connect(port(&server));
    assert_eq!(scram_login(&mut admin, "admin", "admin-pw"), 0);
    assert_eq!(create_topic(&mut admin, "orders", 1, &[]), 0);
    let mut alice = Client::connect(port(&server));
    assert_eq!(scram_login(&mut alice, "alice", "alice-pw"), 0);

    // a super user: every operation Kafka 4.1 lists for topics and the cluster
    let all_topic = [3, 4, 5, 6, 7, 8, 10, 11]
        .iter()
        .fold(0, |b, op| b | 1 << op);
    let all_cluster = [5, 7, 8, 9, 10, 11, 12].iter().fold(0, |b, op| b | 1 << op);
    assert_eq!(
        authorized_operations(&mut admin, "orders"),
        (all_topic, all_cluster, all_cluster)
    );
    // alice: READ implies DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS; nothing on the
    // cluster (so DescribeCluster is CLUSTER_AUTHORIZATION_FAILED)
    allow_alice(&mut admin, 2, "orders", READ);
    allow_alice(&mut admin, 2, "orders", ALTER_CONFIGS);
    let expected_topic = (1 << 3) | (1 << 8) | (1 << 10) | (1 << 11);
    assert_eq!(
        authorized_operations(&mut alice, "orders"),
        (expected_topic, 0, 31)
    );
    allow_alice(&mut admin, 4, "kafka-cluster", DESCRIBE);
    assert_eq!(
        authorized_operations(&mut alice, "orders"),
        (expected_topic, 1 << 8, 1 << 8)
    );
    // not asked for: Kafka's "absent" value
    let md: MetadataResponse = alice.call(&MetadataRequest::default(), 10);
    assert!(md
        .topics
        .iter()
        .all(|t| t.topic_authorized_operations == i32::MIN));
    assert_eq!(md.cluster_authorized_operations, i32::MIN);
}

#[test]
fn describe_client_quotas_reports_none_before_any_is_set_and_checks_filters() {
    use describe_client_quotas_request::ComponentData;
    let server = start_secure("memory://");
    let mut admin = Client::connect(port(&server));
    assert_eq!(scram_login(&mut admin, "admin", "admin-pw"), 0);
    let av: ApiVersionsResponse = admin.call(&ApiVersionsRequest::default(), 3);
    let advertised = |key: ApiKey| av.api_keys.iter().any(|k| k.api_key == key as i16);
    assert!(advertised(ApiKey::DescribeClientQuotas));
    // Quotas are enforced, so both APIs are served (docs/quotas.md).
    assert!(advertised(ApiKey::AlterClientQuotas));

    let user = |match_type: i8, name: Option<&str>| {
        ComponentData::default()
            .with_entity_type(s("user"))
            .with_match_type(match_type)
            .with_match(name.map(s))
    };
    for version in [0, 1] {
        let r: DescribeClientQuotasResponse = admin.call(
            &DescribeClientQuotasRequest::default()
                .with_components(vec![user(0, Some("alice"))])
                .with_strict(false),
            version,
        );
        assert_eq!(
            (r.error_code, r.entries.map(|e| e.len())),
            (0, Some(0)),
            "v{version}"
        );
    }
    let bad: DescribeClientQuotasResponse = admin.call(
        &DescribeClientQuotasRequest::default().with_components(vec![user(0, None)]),
        1,
    );
    assert_eq!(bad.error_code, 42);
    assert!(bad.entries.is_none());
    // DESCRIBE_CONFIGS on the cluster is needed
    let mut alice = Client::connect(port(&server));
    assert_eq!(scram_login(&mut alice, "alice", "alice-pw"), 0);
    let denied: DescribeClientQuotasResponse = alice.call(
        &DescribeClientQuotasRequest::default().with_components(vec![user(2, None)]),
        1,
    );
    assert_eq!(denied.error_code, 31);
}

/// AlterUserScramCredentials of one user: `Some(password)` upserts SCRAM-SHA-512, None deletes.
fn alter_scram(admin: &mut Client, changes: &[(&str, Option<&str>)]) -> Vec<(String, i16)> {
    use alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
    let mut req = AlterUserScramCredentialsRequest::default();
    for (user, password) in changes {
        match password {
            Some(password) => {
                let salt = format!("salt-of-{user}-{password}").into_bytes();
                let mut salted = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, 4096, &mut salted);
                req.upsertions.push(
                    ScramCredentialUpsertion::default()
                        .with_name(s(user))
                        .with_mechanism(2)
                        .with_iterations(4096)
                        .with_salt(salt.into())
                        .with_salted_password(bytes::Bytes::copy_from_slice(&salted)),
                );
            }
            None => req.deletions.push(
                ScramCredentialDeletion::default()
                    .with_name(s(user))
                    .with_mechanism(2),
            ),
        }
    }
    let r: AlterUserScramCredentialsResponse = admin.call(&req, 0);
    r.results
        .iter()
        .map(|x| {
            let msg = x.error_message.as_deref().unwrap_or("");
            if x.error_code == 93 {
                assert!(msg.contains("sasl_users"), "{msg}");
            }
            (x.user.to_string(), x.error_code)
        })
        .collect()
}

fn login_code(server: &RunningServer, user: &str, password: &str) -> i16 {
    scram_login(&mut Client::connect(port(server)), user, password)
}

/// Defect 4 of issue 12: a user of `sasl_users` is static (like Kafka's JAAS users); changing
/// it through AlterUserScramCredentials is refused with UNACCEPTABLE_CREDENTIAL instead of
/// answering success and changing nothing. Users created through the API rotate and delete
/// for real, and keep their state across a restart.
#[test]
fn scram_changes_refuse_configured_users_and_apply_to_managed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", dir.path().display());
    {
        let server = start_secure(&storage);
        let mut admin = Client::connect(port(&server));
        assert_eq!(scram_login(&mut admin, "admin", "admin-pw"), 0);
        assert_eq!(
            alter_scram(&mut admin, &[("alice", Some("alice-new"))]),
            [("alice".to_string(), 93)]
        );
        assert_eq!(
            alter_scram(&mut admin, &[("alice", None)]),
            [("alice".to_string(), 93)]
        );
        assert_eq!(login_code(&server, "alice", "alice-pw"), 0);
        assert_eq!(login_code(&server, "alice", "alice-new"), 58);
        // one request, two users: the configured one is refused, the other one is applied
        assert_eq!(
            alter_scram(
                &mut admin,
                &[("alice", Some("alice-new")), ("carol", Some("carol-1"))]
            ),
            [("alice".to_string(), 93), ("carol".to_string(), 0)]
        );
        assert_eq!(login_code(&server, "carol", "carol-1"), 0);
        // rotation: the old password stops working at once
        assert_eq!(
            alter_scram(&mut admin, &[("carol", Some("carol-2"))]),
            [("carol".to_string(), 0)]
        );
        assert_eq!(login_code(&server, "carol", "carol-1"), 58);
        assert_eq!(login_code(&server, "carol", "carol-2"), 0);
        assert_eq!(
            alter_scram(&mut admin, &[("dave", Some("dave-1"))]),
            [("dave".to_string(), 0)]
        );
        assert_eq!(
            alter_scram(&mut admin, &[("dave", None)]),
            [("dave".to_string(), 0)]
        );
        assert_eq!(login_code(&server, "dave", "dave-1"), 58);
        let described: DescribeUserScramCredentialsResponse =
            admin.call(&DescribeUserScramCredentialsRequest::default(), 0);
        let users: Vec<&str> = described.results.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(users, ["carol"]);
    }
    let server = start_secure(&storage);
    assert_eq!(login_code(&server, "carol", "carol-2"), 0);
    assert_eq!(login_code(&server, "carol", "carol-1"), 58);
    assert_eq!(login_code(&server, "dave", "dave-1"), 58);
    assert_eq!(login_code(&server, "alice", "alice-pw"), 0);
    assert_eq!(login_code(&server, "alice", "alice-new"), 58);
}
