//! Consumer groups over the wire: coordinator lookup, a two-member rebalance, bad input, offsets
//! (single and multi-group fetch, metadata), admin APIs and durability across a restart.

use crate::common::*;
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

const NO_DELAY: &str = r#", "group_initial_rebalance_delay_ms": 0"#;

fn join_req(group: &str, member: &str, instance: Option<&str>, meta: Bytes) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_group_instance_id(instance.map(s))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(meta)])
}

/// JoinGroup v9 through MEMBER_ID_REQUIRED.
fn join(c: &mut Client, group: &str) -> JoinGroupResponse {
    let first = c.call(&join_req(group, "", None, Bytes::from_static(b"m")), 9);
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    c.call(
        &join_req(group, &first.member_id, None, Bytes::from_static(b"m")),
        9,
    )
}

fn sync(
    c: &mut Client,
    group: &str,
    member: &str,
    generation: i32,
    assign: &[(&str, &[u8])],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(
            assign
                .iter()
                .map(|(m, a)| {
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        );
    c.call(&req, 5)
}

fn heartbeat(c: &mut Client, group: &str, member: &str, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_generation_id(generation);
    c.call(&req, 4).error_code
}

#[allow(clippy::too_many_arguments)]
fn commit(
    c: &mut Client,
    group: &str,
    member: &str,
    generation: i32,
    t: &str,
    p: i32,
    offset: i64,
    meta: &str,
) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic(t))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(0)
                        .with_committed_metadata(Some(s(meta))),
                ]),
        ]);
    c.call(&req, 9).topics[0].partitions[0].error_code
}

/// (offset, metadata) committed for one partition, through the v8 multi-group form.
fn fetch_offset(c: &mut Client, group: &str, t: &str, p: i32) -> (i64, String) {
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(gid(group))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(topic(t))
                    .with_partition_indexes(vec![p]),
            ])),
    ]);
    let r = c.call(&req, 8);
    let part = &r.groups[0].topics[0].partitions[0];
    (
        part.committed_offset,
        part.metadata
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

#[test]
fn find_coordinator_single_and_batched() {
    let server = start("memory://", "");
    let mut c = Client::connect(port(&server));
    let r = c.call(&FindCoordinatorRequest::default().with_key(s("g")), 3);
    assert_eq!((r.error_code, r.port), (0, i32::from(port(&server))));
    let r = c.call(
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![s("a"), s("b")]),
        6,
    );
    assert_eq!(r.coordinators.len(), 2);
    assert!(r
        .coordinators
        .iter()
        .all(|x| x.error_code == 0 && x.node_id.0 == 1));
    let r = c.call(
        &FindCoordinatorRequest::default()
            .with_key(s("g"))
            .with_key_type(9),
        3,
    );
    assert_eq!(r.error_code, 42, "INVALID_REQUEST for an unknown key type");
}

#[test]
fn two_members_rebalance_with_errors_for_bad_input() {
    let server = start("memory://", NO_DELAY);
    let p = port(&server);
    let mut a = Client::connect(p);
    let ja = join(&mut a, "g");
    assert_eq!((ja.error_code, ja.generation_id), (0, 1));
    assert_eq!(ja.leader, ja.member_id);
    let sa = sync(&mut a, "g", &ja.member_id, 1, &[(&ja.member_id, b"all")]);
    assert_eq!((sa.error_code, &sa.assignment[..]), (0, &b"all"[..]));

    // A second member joins from another thread; its JoinGroup waits for A to rejoin.
    let b = std::thread::spawn(move || {
        let mut b = Client::connect(p);
        let jb = join(&mut b, "g");
        let sb = sync(&mut b, "g", &jb.member_id, jb.generation_id, &[]);
        (jb, sb)
    });
    let mut hb = 0;
    for _ in 0..100 {
        hb = heartbeat(&mut a, "g", &ja.member_id, 1);
        if hb == 27 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(hb, 27, "REBALANCE_IN_PROGRESS tells A to rejoin");
    let ja2 = a.call(
        &join_req("g", &ja.member_id, None, Bytes::from_static(b"m")),
        9,
    );
    assert_eq!(
        (ja2.error_code, ja2.generation_id, ja2.members.len()),
        (0, 2, 2)
    );
    let other = ja2
        .members
        .iter()
        .find(|m| m.member_id != ja.member_id)
        .unwrap()
        .member_id
        .to_string();
    // Bad input is answered with Kafka's codes and does not disturb the group.
    assert_eq!(
        sync(&mut a, "g", &ja.member_id, 1, &[]).error_code,
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        heartbeat(&mut a, "g", "stranger", 2),
        25,
        "UNKNOWN_MEMBER_ID"
    );
    assert_eq!(heartbeat(&mut a, "nogroup", "stranger", 0), 25);
    let sa = sync(
        &mut a,
        "g",
        &ja.member_id,
        2,
        &[(&ja.member_id, b"A"), (&other, b"B")],
    );
    assert_eq!(&sa.assignment[..], b"A");
    let (jb, sb) = b.join().unwrap();
    assert_eq!((jb.generation_id, jb.members.len()), (2, 0));
    assert_eq!((sb.error_code, &sb.assignment[..]), (0, &b"B"[..]));
    assert_eq!(heartbeat(&mut a, "g", &ja.member_id, 2), 0);

    // Offsets: member commit with the right and a wrong generation.
    create_topic(&mut a, "t", 2, &[]);
    assert_eq!(commit(&mut a, "g", &ja.member_id, 2, "t", 0, 10, "m1"), 0);
    assert_eq!(commit(&mut a, "g", &ja.member_id, 1, "t", 0, 11, ""), 22);
    assert_eq!(
        commit(&mut a, "g", "", -1, "t", 0, 11, ""),
        25,
        "group is not empty"
    );
    assert_eq!(commit(&mut a, "g", &ja.member_id, 2, "nosuch", 0, 1, ""), 3);
    let huge = "x".repeat(5000);
    assert_eq!(commit(&mut a, "g", &ja.member_id, 2, "t", 1, 1, &huge), 12);
    assert_eq!(fetch_offset(&mut a, "g", "t", 0), (10, "m1".into()));
    assert_eq!(fetch_offset(&mut a, "g", "t", 1).0, -1);

    // Describe, list, delete.
    let d = a.call(
        &DescribeGroupsRequest::default().with_groups(vec![gid("g"), gid("none")]),
        5,
    );
    assert_eq!(&*d.groups[0].group_state, "Stable");
    assert_eq!(d.groups[0].members.len(), 2);
    assert_eq!(&*d.groups[1].group_state, "Dead");
    let d6 = a.call(
        &DescribeGroupsRequest::default().with_groups(vec![gid("none")]),
        6,
    );
    assert_eq!(d6.groups[0].error_code, 69, "GROUP_ID_NOT_FOUND");
    let l = a.call(
        &ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
        4,
    );
    assert_eq!(l.groups.len(), 1);
    let del = a.call(
        &DeleteGroupsRequest::default().with_groups_names(vec![gid("g"), gid("x")]),
        2,
    );
    assert_eq!(
        del.results.iter().map(|r| r.error_code).collect::<Vec<_>>(),
        vec![68, 69],
        "NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND"
    );
    // Both leave in one batched request; then the group is empty and can be deleted.
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(ja.member_id.clone()),
            leave_group_request::MemberIdentity::default().with_member_id(s(&other)),
            leave_group_request::MemberIdentity::default().with_member_id(s("ghost")),
        ]);
    let r = a.call(&leave, 5);
    assert_eq!(
        r.members.iter().map(|m| m.error_code).collect::<Vec<_>>(),
        vec![0, 0, 25]
    );
    let d = a.call(
        &DescribeGroupsRequest::default().with_groups(vec![gid("g")]),
        5,
    );
    assert_eq!(&*d.groups[0].group_state, "Empty");
    assert_eq!(
        commit(&mut a, "g", "", -1, "t", 1, 7, ""),
        0,
        "admin commit to an empty group"
    );
    let od = OffsetDeleteRequest::default()
        .with_group_id(gid("g"))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(1),
                ]),
        ]);
    let r = a.call(&od, 0);
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    assert_eq!(fetch_offset(&mut a, "g", "t", 1).0, -1);
    let del = a.call(
        &DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]),
        2,
    );
    assert_eq!(del.results[0].error_code, 0);
    assert_eq!(
        fetch_offset(&mut a, "g", "t", 0).0,
        -1,
        "offsets went with the group"
    );
}

#[test]
fn offsets_survive_restart_and_topic_deletion_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", dir.path().display());
    {
        let server = start(&storage, NO_DELAY);
        let mut c = Client::connect(port(&server));
        create_topic(&mut c, "d", 1, &[]);
        create_topic(&mut c, "e", 1, &[]);
        assert_eq!(commit(&mut c, "simple", "", -1, "d", 0, 5, "meta-d"), 0);
        assert_eq!(commit(&mut c, "simple", "", -1, "e", 0, 6, ""), 0);
    }
    {
        let server = start(&storage, NO_DELAY);
        let mut c = Client::connect(port(&server));
        assert_eq!(fetch_offset(&mut c, "simple", "d", 0), (5, "meta-d".into()));
        // v1 (single group, no error code) still works.
        let r = c.call(
            &OffsetFetchRequest::default()
                .with_group_id(gid("simple"))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic("e"))
                        .with_partition_indexes(vec![0]),
                ])),
            1,
        );
        assert_eq!(r.topics[0].partitions[0].committed_offset, 6);
        let del = DeleteTopicsRequest::default().with_topic_names(vec![topic("e")]);
        assert_eq!(c.call(&del, 4).responses[0].error_code, 0);
        let l = c.call(&ListGroupsRequest::default(), 3);
        assert_eq!(&*l.groups[0].group_id, "simple");
    }
    let server = start(&storage, NO_DELAY);
    let mut c = Client::connect(port(&server));
    create_topic(&mut c, "e", 1, &[]);
    assert_eq!(
        fetch_offset(&mut c, "simple", "e", 0).0,
        -1,
        "deleted with its topic"
    );
    assert_eq!(fetch_offset(&mut c, "simple", "d", 0).0, 5);
}

fn cg_heartbeat(
    c: &mut Client,
    group: &str,
    member: &str,
    epoch: i32,
    owned: Option<&consumer_group_heartbeat_response::Assignment>,
) -> ConsumerGroupHeartbeatResponse {
    let mut req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000);
    if epoch == 0 {
        req = req
            .with_subscribed_topic_names(Some(vec![topic("kt")]))
            // librdkafka sends an empty (not null) regex: no regex.
            .with_subscribed_topic_regex(Some(s("")))
            .with_topic_partitions(Some(vec![]));
    }
    if let Some(a) = owned {
        req = req.with_topic_partitions(Some(
            a.topic_partitions
                .iter()
                .map(|tp| {
                    consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(tp.topic_id)
                        .with_partitions(tp.partitions.clone())
                })
                .collect(),
        ));
    }
    c.call(&req, 1)
}

fn count(a: &Option<consumer_group_heartbeat_response::Assignment>) -> usize {
    a.as_ref().map_or(0, |a| {
        a.topic_partitions.iter().map(|t| t.partitions.len()).sum()
    })
}

#[test]
fn kip848_heartbeat_assigns_revokes_and_commits_with_member_epoch() {
    let server = start("memory://", NO_DELAY);
    let mut c = Client::connect(port(&server));
    create_topic(&mut c, "kt", 4, &[]);
    let a = cg_heartbeat(&mut c, "cg", "member-a", 0, None);
    assert_eq!((a.error_code, count(&a.assignment)), (0, 4));
    let b = cg_heartbeat(&mut c, "cg", "member-b", 0, None);
    assert_eq!(
        (b.error_code, count(&b.assignment)),
        (0, 0),
        "a still owns all"
    );
    let a1 = cg_heartbeat(&mut c, "cg", "member-a", a.member_epoch, None);
    assert_eq!(
        (a1.member_epoch, count(&a1.assignment)),
        (a.member_epoch, 2)
    );
    let a2 = cg_heartbeat(
        &mut c,
        "cg",
        "member-a",
        a1.member_epoch,
        a1.assignment.as_ref(),
    );
    assert_eq!(
        a2.member_epoch, b.member_epoch,
        "revoked: a moves to the new epoch"
    );
    let b2 = cg_heartbeat(&mut c, "cg", "member-b", b.member_epoch, None);
    assert_eq!(count(&b2.assignment), 2);
    let stale = cg_heartbeat(&mut c, "cg", "member-b", b.member_epoch + 5, None);
    assert_eq!(stale.error_code, 110, "FENCED_MEMBER_EPOCH");
    let d = c.call(
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("cg"), gid("nope")]),
        1,
    );
    assert_eq!(&*d.groups[0].group_state, "Stable");
    assert_eq!(d.groups[0].members.len(), 2);
    assert_eq!(d.groups[1].error_code, 69);
    // Commits carry the member epoch.
    assert_eq!(
        commit(&mut c, "cg", "member-b", b2.member_epoch, "kt", 0, 3, ""),
        0
    );
    assert_eq!(
        commit(&mut c, "cg", "member-b", 1, "kt", 0, 3, ""),
        113,
        "STALE_MEMBER_EPOCH"
    );
    assert_eq!(commit(&mut c, "cg", "", -1, "kt", 0, 3, ""), 25);
    // A classic member cannot join the consumer group.
    let j = c.call(&join_req("cg", "", None, Bytes::from_static(b"m")), 9);
    assert_eq!(j.error_code, 23);
    let l = c.call(
        &ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
        5,
    );
    assert_eq!(l.groups.len(), 1);
    assert_eq!(&*l.groups[0].group_type, "consumer");
    // Leaving: both go, the group is empty and deletable.
    for m in ["member-a", "member-b"] {
        assert_eq!(cg_heartbeat(&mut c, "cg", m, -1, None).member_epoch, -1);
    }
    let del = c.call(
        &DeleteGroupsRequest::default().with_groups_names(vec![gid("cg")]),
        2,
    );
    assert_eq!(del.results[0].error_code, 0);
}

/// Every served version of every group API answers a typical request (the codec refuses to
/// encode a field a version lacks, so this catches version-dependent fields).
#[test]
fn every_served_version_of_the_group_apis_answers() {
    let server = start("memory://", NO_DELAY);
    let mut c = Client::connect(port(&server));
    create_topic(&mut c, "sv", 1, &[]);
    let range = |key: ApiKey| kop_core::handlers::served_range(key).unwrap();
    let (lo, hi) = range(ApiKey::FindCoordinator);
    for v in lo..=hi {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")])
        } else {
            FindCoordinatorRequest::default().with_key(s("g"))
        };
        let r = c.call(&req, v);
        let code = r
            .coordinators
            .first()
            .map_or(r.error_code, |x| x.error_code);
        assert_eq!(code, 0, "FindCoordinator v{v}");
    }
    let (lo, hi) = range(ApiKey::JoinGroup);
    for v in lo..=hi {
        let group = format!("sv-{v}");
        let mut req = join_req(&group, "", None, Bytes::from_static(b"m"));
        if v == 0 {
            req.rebalance_timeout_ms = -1;
        }
        if v < 5 {
            req.group_instance_id = None;
        }
        let mut j = c.call(&req, v);
        if j.error_code == 79 {
            req.member_id = j.member_id.clone();
            j = c.call(&req, v);
        }
        assert_eq!((j.error_code, j.generation_id), (0, 1), "JoinGroup v{v}");
        let sv = v.min(5);
        let mut sync = SyncGroupRequest::default()
            .with_group_id(gid(&group))
            .with_member_id(j.member_id.clone())
            .with_generation_id(1);
        if sv >= 5 {
            sync = sync
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")));
        }
        assert_eq!(c.call(&sync, sv).error_code, 0, "SyncGroup v{sv}");
        let hv = v.min(4);
        assert_eq!(
            heartbeat_v(&mut c, &group, &j.member_id, 1, hv),
            0,
            "Heartbeat v{hv}"
        );
        let lv = v.min(5);
        let leave = if lv >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_members(vec![leave_group_request::MemberIdentity::default()
                    .with_member_id(j.member_id.clone())])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_member_id(j.member_id.clone())
        };
        let r = c.call(&leave, lv);
        let code = r.members.first().map_or(r.error_code, |m| m.error_code);
        assert_eq!(code, 0, "LeaveGroup v{lv}");
    }
    let (lo, hi) = range(ApiKey::OffsetCommit);
    for v in lo..=hi {
        let mut p = offset_commit_request::OffsetCommitRequestPartition::default()
            .with_partition_index(0)
            .with_committed_offset(i64::from(v))
            .with_committed_metadata(Some(s("m")));
        if v >= 6 {
            p.committed_leader_epoch = 0;
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(gid("sv-oc"))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic("sv"))
                    .with_partitions(vec![p]),
            ]);
        let r = c.call(&req, v);
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetCommit v{v}");
    }
    let (lo, hi) = range(ApiKey::OffsetFetch);
    for v in lo..=hi {
        let offset = if v >= 8 {
            let req = OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(gid("sv-oc"))
                    .with_topics(None),
            ]);
            c.call(&req, v).groups[0].topics[0].partitions[0].committed_offset
        } else {
            let req = OffsetFetchRequest::default()
                .with_group_id(gid("sv-oc"))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic("sv"))
                        .with_partition_indexes(vec![0]),
                ]));
            c.call(&req, v).topics[0].partitions[0].committed_offset
        };
        assert_eq!(offset, 9, "OffsetFetch v{v}");
    }
    let (lo, hi) = range(ApiKey::DescribeGroups);
    for v in lo..=hi {
        let req = DescribeGroupsRequest::default().with_groups(vec![gid("sv-oc"), gid("sv-1")]);
        let r = c.call(&req, v);
        assert!(
            r.groups.iter().all(|g| g.error_code == 0),
            "DescribeGroups v{v}"
        );
    }
    let (lo, hi) = range(ApiKey::ListGroups);
    for v in lo..=hi {
        assert!(
            c.call(&ListGroupsRequest::default(), v).groups.len() >= 10,
            "ListGroups v{v}"
        );
    }
    let (lo, hi) = range(ApiKey::DeleteGroups);
    for v in lo..=hi {
        let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(&format!("sv-{v}"))]);
        assert_eq!(
            c.call(&req, v).results[0].error_code,
            0,
            "DeleteGroups v{v}"
        );
    }
    let od = OffsetDeleteRequest::default()
        .with_group_id(gid("sv-oc"))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(topic("sv"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(0),
                ]),
        ]);
    assert_eq!(c.call(&od, 0).topics[0].partitions[0].error_code, 0);
    let (lo, hi) = range(ApiKey::ConsumerGroupHeartbeat);
    for v in lo..=hi {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid(&format!("sv-cg-{v}")))
            .with_member_id(s(&format!("m{v}")))
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![topic("sv")]))
            .with_topic_partitions(Some(vec![]));
        let r = c.call(&req, v);
        assert_eq!(
            (r.error_code, count(&r.assignment)),
            (0, 1),
            "ConsumerGroupHeartbeat v{v}"
        );
    }
    let (lo, hi) = range(ApiKey::ConsumerGroupDescribe);
    for v in lo..=hi {
        let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("sv-cg-0")]);
        let r = c.call(&req, v);
        assert_eq!(
            (r.groups[0].error_code, r.groups[0].members.len()),
            (0, 1),
            "ConsumerGroupDescribe v{v}"
        );
    }
}

fn heartbeat_v(c: &mut Client, group: &str, member: &str, generation: i32, v: i16) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_member_id(s(member))
        .with_generation_id(generation);
    c.call(&req, v).error_code
}

/// TxnOffsetCommit in every served version (the codec checks version-dependent fields); the
/// staged offset is unstable for OffsetFetch with `require_stable`, invisible without, and
/// still pending after a restart (its transaction never ended).
#[test]
fn transactional_offsets_stay_pending_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", dir.path().display());
    let fetch = |c: &mut Client, stable: bool| {
        let req = OffsetFetchRequest::default()
            .with_group_id(gid("txg"))
            .with_require_stable(stable)
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic("tx"))
                    .with_partition_indexes(vec![0]),
            ]));
        let p = &c.call(&req, 7).topics[0].partitions[0];
        (p.committed_offset, p.error_code)
    };
    {
        let server = start(&storage, NO_DELAY);
        let mut c = Client::connect(port(&server));
        create_topic(&mut c, "tx", 1, &[]);
        // A transaction holding the group's offsets, as a producer opens it.
        let init = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("t-id"))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let producer = c.call(&init, 5);
        assert_eq!(producer.error_code, 0);
        let add = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s("t-id")))
            .with_producer_id(producer.producer_id)
            .with_producer_epoch(producer.producer_epoch)
            .with_group_id(gid("txg"));
        assert_eq!(c.call(&add, 4).error_code, 0);
        let range = kop_core::handlers::served_range(ApiKey::TxnOffsetCommit).unwrap();
        assert_eq!(range, (0, 5));
        for v in range.0..=range.1 {
            let req = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("t-id")))
                .with_group_id(gid("txg"))
                .with_producer_id(producer.producer_id)
                .with_producer_epoch(producer.producer_epoch)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(topic("tx"))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(10 + i64::from(v))
                                .with_committed_metadata(Some(s("m"))),
                        ]),
                ]);
            let r = c.call(&req, v);
            assert_eq!(
                r.topics[0].partitions[0].error_code, 0,
                "TxnOffsetCommit v{v}"
            );
        }
        assert_eq!(fetch(&mut c, true), (-1, 88), "UNSTABLE_OFFSET_COMMIT");
        assert_eq!(fetch(&mut c, false), (-1, 0));
    }
    let server = start(&storage, NO_DELAY);
    let mut c = Client::connect(port(&server));
    assert_eq!(
        fetch(&mut c, true),
        (-1, 88),
        "still pending after a restart"
    );
}
