//! AlterShareGroupOffsets, DeleteShareGroupOffsets and DeleteGroups of share groups, with the
//! errors Kafka 4.4 answers.

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;

use super::*;
use crate::error::KafkaError;
use crate::share::groups::ShareHeartbeat;
use crate::share::ShareKey;

fn alter_req(group: &str, topic: &str, partitions: &[(i32, i64)]) -> AlterShareGroupOffsetsRequest {
    AlterShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
            .with_topic_name(TopicName(sb(topic)))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(p, o)| {
                        AlterShareGroupOffsetsRequestPartition::default()
                            .with_partition_index(p)
                            .with_start_offset(o)
                    })
                    .collect(),
            )])
}

fn delete_req(group: &str, topics: &[&str]) -> DeleteShareGroupOffsetsRequest {
    DeleteShareGroupOffsetsRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    DeleteShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(sb(*t)))
                })
                .collect(),
        )
}

#[tokio::test]
async fn offsets_of_an_empty_share_group_are_altered_and_deleted() {
    let ctx = RequestContext::builder().build();
    let header = ctx.header(ApiKey::AlterShareGroupOffsets, 0);
    let topic = ctx.topic("t", 1);
    let states = &ctx.broker.share.states;
    // No such group.
    let resp = share_offsets::alter_offsets(&ctx, &header, alter_req("g", "t", &[(0, 3)])).await;
    assert_eq!(resp.error_code, KafkaError::GroupIdNotFound.code());
    // A group with a stored share partition (its members gone with a restart).
    let key = ShareKey {
        group: "g".into(),
        topic_id: topic.id,
        partition: 0,
    };
    states.initialize(&key, 0).unwrap();
    let resp =
        share_offsets::alter_offsets(&ctx, &header, alter_req("g", "t", &[(0, 3), (5, 0)])).await;
    assert_eq!(resp.error_code, 0);
    let parts = &resp.responses[0].partitions;
    assert_eq!(resp.responses[0].topic_id, topic.id);
    assert_eq!((parts[0].error_code, parts[1].error_code), (0, 3));
    assert_eq!(states.start_offsets("g").unwrap(), vec![(topic.id, 0, 3)]);
    let resp = share_offsets::alter_offsets(&ctx, &header, alter_req("g", "nope", &[(0, 1)])).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 3);

    // A member joins: the group is not empty.
    let t = |n: &str| (n == "t").then_some((topic.id, 1));
    ctx.broker
        .groups
        .share_heartbeat(
            "g",
            ShareHeartbeat {
                member_id: "m".into(),
                member_epoch: 0,
                rack_id: None,
                subscribed: Some(vec!["t".into()]),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
            },
            &t,
        )
        .unwrap();
    let resp = share_offsets::alter_offsets(&ctx, &header, alter_req("g", "t", &[(0, 0)])).await;
    assert_eq!(resp.error_code, KafkaError::NonEmptyGroup.code());
    let del_header = ctx.header(ApiKey::DeleteShareGroupOffsets, 0);
    let resp = share_offsets::delete_offsets(&ctx, &del_header, delete_req("g", &["t"])).await;
    assert_eq!(resp.error_code, KafkaError::NonEmptyGroup.code());
    let groups_header = ctx.header(ApiKey::DeleteGroups, 2);
    let del_group = |ctx| {
        groups::delete_groups(
            ctx,
            &groups_header,
            DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("g"))]),
        )
    };
    assert_eq!(
        del_group(&ctx).await.results[0].error_code,
        KafkaError::NonEmptyGroup.code()
    );

    // It leaves: offsets are deleted (a topic without state is UNKNOWN_TOPIC_OR_PARTITION),
    // then the group.
    ctx.broker
        .groups
        .share_heartbeat(
            "g",
            ShareHeartbeat {
                member_id: "m".into(),
                member_epoch: -1,
                rack_id: None,
                subscribed: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
            },
            &t,
        )
        .unwrap();
    ctx.topic("u", 1);
    let resp = share_offsets::delete_offsets(&ctx, &del_header, delete_req("g", &["t", "u"])).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        (resp.responses[0].error_code, resp.responses[0].topic_id),
        (0, topic.id)
    );
    assert_eq!(resp.responses[1].error_code, 3);
    assert!(states.start_offsets("g").unwrap().is_empty());
    assert_eq!(del_group(&ctx).await.results[0].error_code, 0);
    assert!(!ctx.broker.share.is_share_group(&ctx.broker.groups, "g"));
}

#[test]
fn group_configs_override_the_broker_share_settings() {
    use crate::share::{AutoOffsetReset, ShareSettings};
    let defaults = ShareSettings::default();
    let overrides = [
        ("share.record.lock.duration.ms", "20000"),
        ("share.delivery.count.limit", "2"),
        ("share.auto.offset.reset", "earliest"),
        ("share.isolation.level", "read_committed"),
        ("share.renew.acknowledge.enable", "FALSE"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let s = defaults.with_overrides(&overrides);
    assert_eq!((s.limits.lock_ms, s.limits.delivery_limit), (20_000, 2));
    assert_eq!(s.auto_offset_reset, AutoOffsetReset::Earliest);
    assert!(s.read_committed);
    assert!(defaults.renew_enabled && !s.renew_enabled);
    assert_eq!(defaults.with_overrides(&Default::default()), defaults);
}

/// The classic-group APIs on a share group's id answer as Kafka 4.4 does (measured against it:
/// tests/e2e/test_e2e_share_groups.py): DescribeGroups a dead group, from v6 with
/// GROUP_ID_NOT_FOUND "is not a classic group"; OffsetCommit GROUP_ID_NOT_FOUND; OffsetFetch
/// no offsets; ListGroups the group as type `share`.
#[tokio::test]
async fn classic_group_apis_on_a_share_group() {
    let ctx = RequestContext::builder().build();
    let topic = ctx.topic("t", 1);
    let t = |n: &str| (n == "t").then_some((topic.id, 1));
    ctx.broker
        .groups
        .share_heartbeat(
            "sg",
            ShareHeartbeat {
                member_id: "m".into(),
                member_epoch: 0,
                rack_id: None,
                subscribed: Some(vec!["t".into()]),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
            },
            &t,
        )
        .unwrap();
    let describe = || DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("sg"))]);
    let v6 = ctx.header(ApiKey::DescribeGroups, 6);
    let v5 = ctx.header(ApiKey::DescribeGroups, 5);
    let g = &groups::describe_groups(&ctx, &v6, describe()).await.groups[0];
    assert_eq!(g.error_code, KafkaError::GroupIdNotFound.code());
    assert_eq!(
        g.error_message.as_deref(),
        Some("Group sg is not a classic group.")
    );
    assert_eq!(g.group_state.as_str(), "Dead");
    let g = &groups::describe_groups(&ctx, &v5, describe()).await.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str()), (0, "Dead"));

    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb("sg")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(sb("t")))
                .with_partitions(vec![
                    kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_committed_offset(1),
                ]),
        ]);
    let header = ctx.header(ApiKey::OffsetCommit, 9);
    let resp = offsets::offset_commit(&ctx, &header, commit).await;
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        KafkaError::GroupIdNotFound.code()
    );

    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(sb("sg")))
        .with_topics(None);
    let header = ctx.header(ApiKey::OffsetFetch, 7);
    let resp = offsets::offset_fetch(&ctx, &header, fetch).await;
    assert_eq!((resp.error_code, resp.topics.len()), (0, 0));

    let header = ctx.header(ApiKey::ListGroups, 5);
    let listed = groups::list_groups(&ctx, &header, ListGroupsRequest::default()).await;
    let g = &listed.groups[0];
    assert_eq!(
        (
            g.group_id.as_str(),
            g.group_type.as_str(),
            g.protocol_type.as_str()
        ),
        ("sg", "share", "share")
    );
}
