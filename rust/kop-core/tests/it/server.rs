//! In-process integration tests: a real server on a loopback port, driven over the wire.

use std::time::{Duration, Instant};

use crate::common::*;
use kafka_protocol::messages::*;

#[test]
fn produce_fetch_roundtrip_with_dense_offsets() {
    let server = start("memory://", "");
    let mut c = Client::connect(port(&server));
    assert_eq!(create_topic(&mut c, "t", 2, &[]), 0);
    let first = produce(
        &mut c,
        "t",
        1,
        records(&[b"a", b"b", b"c"], 1000, (-1, -1, -1)),
    );
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    let second = produce(&mut c, "t", 1, records(&[b"d"], 2000, (-1, -1, -1)));
    assert_eq!((second.error_code, second.base_offset), (0, 3));
    let data = fetch(&mut c, "t", 1, 1, 0);
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 4);
    // The whole first batch comes back even though offset 1 is inside it.
    let values = decode_values(data.records.unwrap());
    let expected: Vec<(i64, &[u8])> = vec![(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")];
    assert_eq!(
        values
            .iter()
            .map(|(o, v)| (*o, v.as_ref()))
            .collect::<Vec<_>>(),
        expected
    );
    let out_of_range = fetch(&mut c, "t", 1, 99, 0);
    assert_eq!(out_of_range.error_code, 1);
}

#[test]
fn fetch_long_poll_wakes_on_produce() {
    let server = start("memory://", "");
    let p = port(&server);
    let mut c = Client::connect(p);
    assert_eq!(create_topic(&mut c, "w", 1, &[]), 0);
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut c2 = Client::connect(p);
        produce(&mut c2, "w", 0, records(&[b"late"], 1, (-1, -1, -1)))
    });
    let t0 = Instant::now();
    let data = fetch(&mut c, "w", 0, 0, 10_000);
    let waited = t0.elapsed();
    assert_eq!(producer.join().unwrap().error_code, 0);
    assert_eq!(decode_values(data.records.unwrap()).len(), 1);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[test]
fn idempotent_retries_are_deduplicated_and_gaps_rejected() {
    let server = start("memory://", "");
    let mut c = Client::connect(port(&server));
    let pid = c.call(
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60000),
        4,
    );
    assert_eq!(pid.error_code, 0);
    let producer = (pid.producer_id.0, pid.producer_epoch, 0);
    create_topic(&mut c, "i", 1, &[]);
    let batch = records(&[b"x", b"y"], 5, producer);
    assert_eq!(produce(&mut c, "i", 0, batch.clone()).base_offset, 0);
    let retry = produce(&mut c, "i", 0, batch);
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 0),
        "a retry is acknowledged at its offset"
    );
    let gap = produce(
        &mut c,
        "i",
        0,
        records(&[b"z"], 6, (producer.0, producer.1, 5)),
    );
    assert_eq!(gap.error_code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    assert_eq!(fetch(&mut c, "i", 0, 0, 0).high_watermark, 2);
}

#[test]
fn corrupt_batch_and_oversized_batch_are_rejected() {
    let server = start("memory://", "");
    let mut c = Client::connect(port(&server));
    create_topic(&mut c, "c", 1, &[("max.message.bytes", "200")]);
    let mut bad = records(&[b"payload"], 1, (-1, -1, -1)).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert_eq!(
        produce(&mut c, "c", 0, bad.into()).error_code,
        2,
        "CORRUPT_MESSAGE"
    );
    let big = vec![7u8; 500];
    assert_eq!(
        produce(&mut c, "c", 0, records(&[&big], 1, (-1, -1, -1))).error_code,
        10
    );
    assert_eq!(
        produce(&mut c, "c", 0, records(&[b"ok"], 1, (-1, -1, -1))).error_code,
        0
    );
}

#[test]
fn list_offsets_by_time_and_extremes() {
    let server = start("memory://", "");
    let mut c = Client::connect(port(&server));
    create_topic(&mut c, "l", 1, &[]);
    produce(
        &mut c,
        "l",
        0,
        records(&[b"a", b"b", b"c"], 100, (-1, -1, -1)),
    );
    produce(&mut c, "l", 0, records(&[b"d"], 500, (-1, -1, -1)));
    let ask = |c: &mut Client, ts: i64| {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic("l"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(ts),
                ])]);
        let r = c.call(&req, 8).topics[0].partitions[0].clone();
        (r.offset, r.timestamp)
    };
    assert_eq!(ask(&mut c, -2).0, 0);
    assert_eq!(ask(&mut c, -1).0, 4);
    assert_eq!(ask(&mut c, 101), (1, 101));
    assert_eq!(ask(&mut c, 300), (3, 500));
    assert_eq!(ask(&mut c, 9999), (-1, -1));
    assert_eq!(ask(&mut c, -3), (3, 500));
}

#[test]
fn file_log_survives_restart_and_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", dir.path().display());
    {
        let server = start(&storage, "");
        let mut c = Client::connect(port(&server));
        create_topic(&mut c, "d", 1, &[("retention.ms", "-1")]);
        let now = kop_core::now_ms();
        for i in 0..50 {
            let v = format!("value-{i}");
            assert_eq!(
                produce(
                    &mut c,
                    "d",
                    0,
                    records(&[v.as_bytes()], now + i, (-1, -1, -1))
                )
                .base_offset,
                i
            );
        }
        server.stop(Duration::from_secs(5));
    }
    // Simulate a crash mid-write: half a batch at the end of the segment.
    let seg = dir.path().join("logs/d-0/00000000000000000000.log");
    let mut data = std::fs::read(&seg).unwrap();
    let half = records(&[b"torn"], 0, (-1, -1, -1));
    data.extend_from_slice(&half[..half.len() / 2]);
    std::fs::write(&seg, &data).unwrap();
    let server = start(&storage, "");
    let mut c = Client::connect(port(&server));
    let data = fetch(&mut c, "d", 0, 0, 0);
    assert_eq!(data.high_watermark, 50);
    let next = produce(
        &mut c,
        "d",
        0,
        records(&[b"after"], kop_core::now_ms(), (-1, -1, -1)),
    );
    assert_eq!(
        next.base_offset, 50,
        "offsets continue after recovery with no gap"
    );
    let all = fetch(&mut c, "d", 0, 49, 0);
    let values = decode_values(all.records.unwrap());
    assert_eq!(values.last().unwrap().1.as_ref(), b"after");
}

#[test]
fn segments_roll_and_retention_by_bytes_moves_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let storage = format!("file://{}", dir.path().display());
    let server = start(&storage, r#", "log_retention_check_interval_ms": 100"#);
    let mut c = Client::connect(port(&server));
    create_topic(
        &mut c,
        "r",
        1,
        &[("segment.bytes", "1000"), ("retention.bytes", "2000")],
    );
    let value = vec![b'v'; 300];
    for i in 0..40 {
        produce(&mut c, "r", 0, records(&[&value], i, (-1, -1, -1)));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let d = fetch(&mut c, "r", 0, 39, 0);
        if d.log_start_offset > 0 {
            assert!(d.log_start_offset < 40);
            let gone = fetch(&mut c, "r", 0, 0, 0);
            assert_eq!(
                gone.error_code, 1,
                "data before the log start is out of range"
            );
            break;
        }
        assert!(Instant::now() < deadline, "retention never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_frames_close_only_that_connection() {
    let server = start("memory://", "");
    let p = port(&server);
    let mut good = Client::connect(p);
    create_topic(&mut good, "b", 1, &[]);
    for frame in [
        (-5i32).to_be_bytes().to_vec(),
        0i32.to_be_bytes().to_vec(),
        i32::MAX.to_be_bytes().to_vec(),
        [
            &12i32.to_be_bytes()[..],
            &[0xff, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
        ]
        .concat(),
        // Metadata v1 claiming 2^31-1 (and ~54M) topics in a 15-byte frame: an array count the
        // codec reserves memory for before it notices the bytes are missing.
        [
            &15i32.to_be_bytes()[..],
            &[0, 3, 0, 1, 0, 0, 0, 7, 0, 1, b'x', 0x7f, 0xff, 0xff, 0xff],
        ]
        .concat(),
        [
            &15i32.to_be_bytes()[..],
            &[0, 3, 0, 1, 0, 0, 0, 8, 0, 1, b'x', 0x03, 0x3c, 0x0c, 0x00],
        ]
        .concat(),
    ] {
        let mut bad = Client::connect(p);
        bad.send_raw(&frame);
        assert!(bad.read_raw().is_none(), "connection closed for {frame:?}");
    }
    assert_eq!(
        produce(
            &mut good,
            "b",
            0,
            records(&[b"still fine"], 1, (-1, -1, -1))
        )
        .error_code,
        0
    );
}

#[test]
fn api_versions_advertises_only_served_and_downgrades_unknown_versions() {
    let server = start("memory://", "");
    let mut c = Client::connect(port(&server));
    let resp = c.call(&ApiVersionsRequest::default(), 3);
    assert_eq!(resp.error_code, 0);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!(produce.min_version, 0);
    // Every key is served; 88/89 (Streams groups) are the ones the crate has no key for.
    assert!(resp.api_keys.iter().all(|k| {
        kop_core::codec::frame::extra_api(k.api_key).is_some()
            || kop_core::handlers::served_range(ApiKey::try_from(k.api_key).unwrap()).is_some()
    }));
    assert!(resp.api_keys.iter().any(|k| k.api_key == 88));
    // ApiVersions v99: answered in v0 form with UNSUPPORTED_VERSION.
    // Header v2 (flexible): api key, version, correlation id, client id "", no tagged fields.
    let frame = [
        &11i32.to_be_bytes()[..],
        &[0, 18, 0, 99, 0, 0, 0, 7, 0, 0, 0],
    ]
    .concat();
    c.send_raw(&frame);
    let mut r = c.read_raw().unwrap();
    use bytes::Buf;
    assert_eq!(r.get_i32(), 7);
    assert_eq!(r.get_i16(), 35);
}

/// Every served version of the data-path and admin APIs answers a typical request (the codec
/// refuses to encode fields a version lacks, so this catches version-dependent fields).
#[test]
fn every_served_version_answers() {
    use kafka_protocol::protocol::StrBytes;
    let server = start("memory://", "");
    let mut c = Client::connect(port(&server));
    assert_eq!(
        create_topic(&mut c, "v", 1, &[("retention.ms", "1000000")]),
        0
    );
    produce(&mut c, "v", 0, records(&[b"a", b"b"], 10, (-1, -1, -1)));
    let range = |key: ApiKey| kop_core::handlers::served_range(key).unwrap();
    let (lo, hi) = range(ApiKey::ListOffsets);
    for v in lo..=hi {
        for ts in [-1, -2, -3, 5] {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic("v"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(ts),
                    ])]);
            assert_eq!(
                c.call(&req, v).topics[0].partitions[0].error_code,
                0,
                "ListOffsets v{v}"
            );
        }
    }
    let (lo, hi) = range(ApiKey::Metadata);
    for v in lo..=hi {
        let mut req = MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic("v"))),
        ]));
        if v >= 4 {
            req.allow_auto_topic_creation = true;
        }
        let resp = c.call(&req, v);
        assert_eq!(resp.topics[0].error_code, 0, "Metadata v{v}");
        assert_eq!(resp.topics[0].partitions.len(), 1);
    }
    let (lo, hi) = range(ApiKey::Fetch);
    let id = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.to_string()).as_deref() == Some("v"))
        .unwrap()
        .topic_id;
    for v in lo..=hi {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(topic("v"))
                .with_topic_id(id)
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let resp = c.call(&req, v);
        assert_eq!(resp.responses[0].partitions[0].error_code, 0, "Fetch v{v}");
        assert_eq!(
            decode_values(resp.responses[0].partitions[0].records.clone().unwrap()).len(),
            2
        );
    }
    let (lo, hi) = range(ApiKey::Produce);
    for v in 3.max(lo)..=hi {
        let mut data = produce_request::TopicProduceData::default().with_partition_data(vec![
            produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records(&[b"p"], 20, (-1, -1, -1)))),
        ]);
        if v >= 13 {
            data.topic_id = id;
        } else {
            data.name = topic("v");
        }
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![data]);
        let resp = c.call(&req, v);
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code, 0,
            "Produce v{v}"
        );
    }
    let (lo, hi) = range(ApiKey::DescribeConfigs);
    for v in lo..=hi {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("v")),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("1")),
            ]);
        let resp = c.call(&req, v);
        let retention = resp.results[0]
            .configs
            .iter()
            .find(|e| e.name.as_str() == "retention.ms")
            .unwrap();
        assert_eq!(
            retention.value.as_ref().map(|s| s.to_string()).as_deref(),
            Some("1000000"),
            "DescribeConfigs v{v}"
        );
        assert_eq!(retention.config_source, 1);
        assert_eq!(resp.results[1].error_code, 0);
    }
    let (lo, hi) = range(ApiKey::CreateTopics);
    for v in lo..=hi {
        let name = format!("created-{v}");
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(topic(&name))
                .with_num_partitions(-1)
                .with_replication_factor(-1)]);
        assert_eq!(c.call(&req, v).topics[0].error_code, 0, "CreateTopics v{v}");
    }
    for (key, call) in [
        (ApiKey::DescribeCluster, 0),
        (ApiKey::InitProducerId, 1),
        (ApiKey::ApiVersions, 2),
        (ApiKey::CreatePartitions, 3),
        (ApiKey::DeleteTopics, 4),
    ] {
        let (lo, hi) = range(key);
        for v in lo..=hi {
            let code = match call {
                0 => c.call(&DescribeClusterRequest::default(), v).error_code,
                1 => {
                    c.call(
                        &InitProducerIdRequest::default().with_transactional_id(None),
                        v,
                    )
                    .error_code
                }
                2 => c.call(&ApiVersionsRequest::default(), v).error_code,
                3 => {
                    let req = CreatePartitionsRequest::default().with_topics(vec![
                        create_partitions_request::CreatePartitionsTopic::default()
                            .with_name(topic("v"))
                            .with_count(2 + i32::from(v))
                            // (the codec's default is an empty list, which Kafka refuses)
                            .with_assignments(None),
                    ]);
                    c.call(&req, v).results[0].error_code
                }
                _ => {
                    let name = format!("created-{}", 1 + v);
                    let req = if v >= 6 {
                        DeleteTopicsRequest::default()
                            .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                                .with_name(Some(topic(&name)))])
                    } else {
                        DeleteTopicsRequest::default().with_topic_names(vec![topic(&name)])
                    };
                    c.call(&req, v).responses[0].error_code
                }
            };
            assert_eq!(code, 0, "{key:?} v{v}");
        }
    }
}
