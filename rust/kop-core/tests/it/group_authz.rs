//! Authorization of the group APIs over the wire, with the ACL authorizer: GROUP and TOPIC
//! ACLs decide, denied requests change nothing, a super user is allowed everything.

use crate::common::*;
use bytes::Bytes;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kop_core::{RunningServer, ServerConfig};

const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;

// Kafka's ACL codes.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const READ: i8 = 3;
const DELETE: i8 = 6;
const DESCRIBE: i8 = 8;
const ALLOW: i8 = 3;

fn start_secure() -> RunningServer {
    let json = r#"{"listeners": ["SASL_PLAINTEXT://127.0.0.1:0"], "storage": "memory://",
        "io_threads": 2, "sasl_users": ["admin:admin-pw", "alice:alice-pw"],
        "authorizer": "acl", "super_users": ["User:admin"],
        "failed_authentication_delay_ms": 0, "group_initial_rebalance_delay_ms": 0}"#;
    RunningServer::start(ServerConfig::from_json(json).unwrap()).unwrap()
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

/// A client logged in with SASL/PLAIN.
fn login(server: &RunningServer, user: &str) -> Client {
    let mut c = Client::connect(port(server));
    let hs: SaslHandshakeResponse = c.call(
        &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        1,
    );
    assert_eq!(hs.error_code, 0);
    let token = format!("\0{user}\0{user}-pw");
    let r: SaslAuthenticateResponse = c.call(
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token.into_bytes())),
        2,
    );
    assert_eq!(r.error_code, 0, "login of {user}");
    c
}

fn allow(admin: &mut Client, rtype: i8, name: &str, op: i8) {
    let creation = AclCreation::default()
        .with_resource_type(rtype)
        .with_resource_name(s(name))
        .with_resource_pattern_type(LITERAL)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(ALLOW);
    let r: CreateAclsResponse = admin.call(
        &CreateAclsRequest::default().with_creations(vec![creation]),
        3,
    );
    assert_eq!(r.results[0].error_code, 0);
}

fn join_req(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"m"))])
}

/// A standalone commit (no member): (topic, offset) on partition 0 each; the error codes.
fn commit(c: &mut Client, group: &str, offsets: &[(&str, i64)]) -> Vec<(String, i16)> {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(""))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            offsets
                .iter()
                .map(|(t, o)| {
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(*o)
                                .with_committed_metadata(Some(s(""))),
                        ])
                })
                .collect(),
        );
    let r: OffsetCommitResponse = c.call(&req, 8);
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.error_code))
        })
        .collect()
}

/// OffsetFetch v8 of one group: (group error, [(topic, offset, partition error)]); `topics`
/// None asks for every topic.
fn fetch(c: &mut Client, group: &str, topics: Option<&[&str]>) -> (i16, Vec<(String, i64, i16)>) {
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(gid(group))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(topic(t))
                            .with_partition_indexes(vec![0])
                    })
                    .collect()
            })),
    ]);
    let r: OffsetFetchResponse = c.call(&req, 8);
    let g = &r.groups[0];
    let parts = g
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.committed_offset, p.error_code))
        })
        .collect();
    (g.error_code, parts)
}

fn find_coordinator(c: &mut Client, key_type: i8, keys: &[&str]) -> Vec<i16> {
    let req = FindCoordinatorRequest::default()
        .with_key_type(key_type)
        .with_coordinator_keys(keys.iter().map(|k| s(k)).collect());
    let r: FindCoordinatorResponse = c.call(&req, 4);
    r.coordinators.iter().map(|c| c.error_code).collect()
}

fn list(c: &mut Client) -> Vec<String> {
    let r: ListGroupsResponse = c.call(&ListGroupsRequest::default(), 4);
    assert_eq!(r.error_code, 0);
    let mut ids: Vec<String> = r.groups.iter().map(|g| g.group_id.to_string()).collect();
    ids.sort();
    ids
}

#[test]
fn group_and_topic_acls_guard_membership_and_offsets() {
    let server = start_secure();
    let mut admin = login(&server, "admin");
    assert_eq!(create_topic(&mut admin, "orders", 1, &[]), 0);
    assert_eq!(create_topic(&mut admin, "secret", 1, &[]), 0);
    let mut alice = login(&server, "alice");

    // No ACL on the group: every membership call and the commit are denied.
    let j: JoinGroupResponse = alice.call(&join_req("g1", ""), 9);
    assert_eq!(j.error_code, GROUP_AUTHORIZATION_FAILED);
    let sync: SyncGroupResponse = alice.call(
        &SyncGroupRequest::default()
            .with_group_id(gid("g1"))
            .with_member_id(s("m"))
            .with_generation_id(1),
        5,
    );
    assert_eq!(sync.error_code, GROUP_AUTHORIZATION_FAILED);
    let hb: HeartbeatResponse = alice.call(
        &HeartbeatRequest::default()
            .with_group_id(gid("g1"))
            .with_member_id(s("m"))
            .with_generation_id(1),
        4,
    );
    assert_eq!(hb.error_code, GROUP_AUTHORIZATION_FAILED);
    let leave: LeaveGroupResponse = alice.call(
        &LeaveGroupRequest::default()
            .with_group_id(gid("g1"))
            .with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(s("m"))
            ]),
        3,
    );
    assert_eq!(leave.error_code, GROUP_AUTHORIZATION_FAILED);
    let cg: ConsumerGroupHeartbeatResponse = alice.call(
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid("g1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic("orders")]))
            .with_topic_partitions(Some(vec![])),
        0,
    );
    assert_eq!(cg.error_code, GROUP_AUTHORIZATION_FAILED);
    assert_eq!(
        commit(&mut alice, "g1", &[("orders", 5), ("secret", 7)]),
        vec![
            ("orders".to_string(), GROUP_AUTHORIZATION_FAILED),
            ("secret".to_string(), GROUP_AUTHORIZATION_FAILED)
        ]
    );
    assert_eq!(find_coordinator(&mut alice, 0, &["g1"]), vec![30]);
    assert_eq!(
        find_coordinator(&mut alice, 1, &["tx"]),
        vec![TRANSACTIONAL_ID_AUTHORIZATION_FAILED]
    );
    let (err, _) = fetch(&mut alice, "g1", None);
    assert_eq!(err, GROUP_AUTHORIZATION_FAILED);
    // Nothing was stored and no group was created.
    assert_eq!(
        fetch(&mut admin, "g1", Some(&["orders"])).1,
        vec![("orders".to_string(), -1, 0)]
    );
    assert!(list(&mut admin).is_empty());

    // READ on the group and on "orders" only.
    allow(&mut admin, GROUP, "g1", READ);
    allow(&mut admin, TOPIC, "orders", READ);
    assert_eq!(find_coordinator(&mut alice, 0, &["g1", "g2"]), vec![0, 30]);
    assert_eq!(
        commit(&mut alice, "g1", &[("orders", 5), ("secret", 7)]),
        vec![
            ("orders".to_string(), 0),
            ("secret".to_string(), TOPIC_AUTHORIZATION_FAILED)
        ]
    );
    assert_eq!(
        fetch(&mut admin, "g1", Some(&["orders", "secret"])).1,
        vec![("orders".to_string(), 5, 0), ("secret".to_string(), -1, 0)]
    );
    // The admin commits "secret": alice sees it denied when listed, and not at all otherwise.
    assert_eq!(
        commit(&mut admin, "g1", &[("secret", 9)]),
        vec![("secret".to_string(), 0)]
    );
    assert_eq!(
        fetch(&mut alice, "g1", Some(&["orders", "secret"])),
        (
            0,
            vec![
                ("orders".to_string(), 5, 0),
                ("secret".to_string(), -1, TOPIC_AUTHORIZATION_FAILED)
            ]
        )
    );
    assert_eq!(
        fetch(&mut alice, "g1", None),
        (0, vec![("orders".to_string(), 5, 0)])
    );
    let all = fetch(&mut admin, "g1", None).1;
    assert_eq!(all.len(), 2, "{all:?}");

    // Membership works with READ on the group.
    let first: JoinGroupResponse = alice.call(&join_req("g1", ""), 9);
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let joined: JoinGroupResponse = alice.call(&join_req("g1", &first.member_id), 9);
    assert_eq!(joined.error_code, 0);
    let hb: HeartbeatResponse = alice.call(
        &HeartbeatRequest::default()
            .with_group_id(gid("g1"))
            .with_member_id(joined.member_id.clone())
            .with_generation_id(joined.generation_id),
        4,
    );
    assert_eq!(hb.error_code, 0);

    // KIP-848: READ on the group but a subscribed topic alice may not describe.
    allow(&mut admin, GROUP, "g848", READ);
    let cg: ConsumerGroupHeartbeatResponse = alice.call(
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid("g848"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic("orders"), topic("secret")]))
            .with_topic_partitions(Some(vec![])),
        0,
    );
    assert_eq!(cg.error_code, TOPIC_AUTHORIZATION_FAILED);
    assert!(!list(&mut admin).contains(&"g848".to_string()));
}

#[test]
fn describe_list_and_delete_follow_group_acls() {
    let server = start_secure();
    let mut admin = login(&server, "admin");
    assert_eq!(create_topic(&mut admin, "orders", 1, &[]), 0);
    for g in ["ga", "gb"] {
        assert_eq!(
            commit(&mut admin, g, &[("orders", 1)]),
            vec![("orders".to_string(), 0)]
        );
    }
    let mut alice = login(&server, "alice");
    assert!(list(&mut alice).is_empty());
    allow(&mut admin, GROUP, "ga", DESCRIBE);
    assert_eq!(list(&mut alice), vec!["ga"]);
    assert_eq!(list(&mut admin), vec!["ga", "gb"]);

    let describe = |c: &mut Client| -> Vec<(String, i16, i32)> {
        let r: DescribeGroupsResponse = c.call(
            &DescribeGroupsRequest::default()
                .with_groups(vec![gid("ga"), gid("gb")])
                .with_include_authorized_operations(true),
            5,
        );
        r.groups
            .iter()
            .map(|g| {
                (
                    g.group_id.to_string(),
                    g.error_code,
                    g.authorized_operations,
                )
            })
            .collect()
    };
    let d = describe(&mut alice);
    assert_eq!(d[0], ("ga".to_string(), 0, 1 << 8));
    assert_eq!(
        (d[1].0.as_str(), d[1].1),
        ("gb", GROUP_AUTHORIZATION_FAILED)
    );
    // a super user: every group operation of Kafka 4.1 (READ, DELETE, DESCRIBE,
    // DESCRIBE_CONFIGS, ALTER_CONFIGS)
    let d = describe(&mut admin);
    let all_group_ops = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);
    assert!(d.iter().all(|g| g.1 == 0 && g.2 == all_group_ops), "{d:?}");

    let cgd: ConsumerGroupDescribeResponse = alice.call(
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("gb")]),
        0,
    );
    assert_eq!(cgd.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);

    // DELETE is needed to delete a group or its offsets; nothing changes when denied.
    let del: DeleteGroupsResponse = alice.call(
        &DeleteGroupsRequest::default().with_groups_names(vec![gid("gb")]),
        2,
    );
    assert_eq!(del.results[0].error_code, GROUP_AUTHORIZATION_FAILED);
    let offset_delete = |c: &mut Client| -> OffsetDeleteResponse {
        c.call(
            &OffsetDeleteRequest::default()
                .with_group_id(gid("gb"))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(topic("orders"))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
            0,
        )
    };
    assert_eq!(
        offset_delete(&mut alice).error_code,
        GROUP_AUTHORIZATION_FAILED
    );
    // OffsetFetch v1 has no group error: it is on the partition.
    let v1: OffsetFetchResponse = alice.call(
        &OffsetFetchRequest::default()
            .with_group_id(gid("gb"))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partition_indexes(vec![0]),
            ])),
        1,
    );
    assert_eq!(
        v1.topics[0].partitions[0].error_code,
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(v1.topics[0].partitions[0].committed_offset, -1);
    assert_eq!(
        fetch(&mut admin, "gb", None).1,
        vec![("orders".to_string(), 1, 0)]
    );
    assert_eq!(list(&mut admin), vec!["ga", "gb"]);

    // DELETE on the group but no READ on the topic: the topic's offsets stay.
    allow(&mut admin, GROUP, "gb", DELETE);
    let od = offset_delete(&mut alice);
    assert_eq!(od.error_code, 0);
    assert_eq!(
        od.topics[0].partitions[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );
    assert_eq!(
        fetch(&mut admin, "gb", None).1,
        vec![("orders".to_string(), 1, 0)]
    );
    allow(&mut admin, TOPIC, "orders", READ);
    let od = offset_delete(&mut alice);
    assert_eq!(od.topics[0].partitions[0].error_code, 0);
    assert!(fetch(&mut admin, "gb", None).1.is_empty());
    // (an empty group without offsets is gone: commit again)
    assert_eq!(
        commit(&mut admin, "gb", &[("orders", 2)]),
        vec![("orders".to_string(), 0)]
    );

    // DESCRIBE on the cluster lists every group.
    allow(&mut admin, CLUSTER, "kafka-cluster", DESCRIBE);
    assert_eq!(list(&mut alice), vec!["ga", "gb"]);

    // The super user deletes.
    let del: DeleteGroupsResponse = admin.call(
        &DeleteGroupsRequest::default().with_groups_names(vec![gid("gb")]),
        2,
    );
    assert_eq!(del.results[0].error_code, 0);
    assert_eq!(list(&mut admin), vec!["ga"]);
}
