//! Requests pipelined on one connection (net/connection.rs): processed in order, answered in
//! order, and a produce that waits for its backend's receipts does not hold up the appends of
//! the produce requests behind it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use kafka_protocol::messages::*;
use kop_core::storage::remote::fake::FakeBackend;
use kop_core::storage::RemoteBackend;
use kop_core::{RunningServer, ServerConfig};

/// A server on the in-memory Pulsar backend (whose receipts a test can hold).
fn start_gated() -> (RunningServer, Arc<FakeBackend>) {
    let backend = Arc::new(FakeBackend::default());
    let json = r#"{"listeners": ["PLAINTEXT://127.0.0.1:0"], "storage": "pulsar://127.0.0.1:1", "io_threads": 2}"#;
    let server = RunningServer::start_embedded(
        ServerConfig::from_json(json).unwrap(),
        None,
        Some(backend.clone() as Arc<dyn RemoteBackend>),
    )
    .unwrap();
    (server, backend)
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pipelined_produce_appends_while_earlier_receipts_are_pending() {
    let (server, backend) = start_gated();
    let mut c = Client::connect(port(&server));
    assert_eq!(create_topic(&mut c, "t", 1, &[]), 0);
    backend.hold_receipts.store(true, Ordering::SeqCst);
    let p = (-1, -1, -1);
    let c1 = c.send(
        &produce_request("t", 0, -1, records(&[b"a", b"b", b"c"], 1, p)),
        9,
    );
    let c2 = c.send(&produce_request("t", 0, 1, records(&[b"d", b"e"], 2, p)), 9);
    let _c3 = c.send(&produce_request("t", 0, 0, records(&[b"f"], 3, p)), 9); // acks=0: no answer
    let c4 = c.send(&produce_request("t", 0, -1, records(&[b"g"], 4, p)), 9);
    // All four are appended although the first still waits for its receipt.
    wait_until("4 appends", || backend.appends.load(Ordering::SeqCst) == 4);
    // No answer before the receipts: acks=1/all means stored.
    c.set_read_timeout(Duration::from_millis(200));
    assert!(
        c.read_raw().is_none(),
        "a produce was answered before its receipt"
    );
    c.set_read_timeout(Duration::from_secs(10));
    // A non-produce request queued behind them is processed only after they complete: this
    // fetch sees every record (the high watermark moves only on receipts).
    let c5 = c.send(&MetadataRequest::default().with_topics(None), 12);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(10 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic("t"))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let c6 = c.send(&fetch, 11);
    std::thread::sleep(Duration::from_millis(50));
    backend.release_receipts();
    let mut offsets = Vec::new();
    for want in [c1, c2, c4] {
        let (cid, resp) = c.recv::<ProduceRequest>(9);
        assert_eq!(cid, want, "responses out of order");
        let part = &resp.responses[0].partition_responses[0];
        assert_eq!(part.error_code, 0);
        offsets.push(part.base_offset);
    }
    assert_eq!(offsets, vec![0, 3, 6]);
    let (cid, md) = c.recv::<MetadataRequest>(12);
    assert_eq!(cid, c5);
    assert!(md
        .topics
        .iter()
        .any(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "t")));
    let (cid, resp) = c.recv::<FetchRequest>(11);
    assert_eq!(cid, c6);
    let data = &resp.responses[0].partitions[0];
    assert_eq!((data.error_code, data.high_watermark), (0, 7));
    let values: Vec<i64> = decode_values(data.records.clone().unwrap())
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    assert_eq!(values, (0..7).collect::<Vec<_>>());
}

#[test]
fn pipelined_mix_is_answered_in_order_on_the_local_log() {
    let server = start("memory://", "");
    let mut c = Client::connect(port(&server));
    assert_eq!(create_topic(&mut c, "t", 2, &[]), 0);
    let p = (-1, -1, -1);
    let mut expected = Vec::new();
    for i in 0..20i64 {
        let acks = [1, -1, 0][i as usize % 3];
        let cid = c.send(
            &produce_request("t", (i % 2) as i32, acks, records(&[b"x"], i, p)),
            9,
        );
        if acks != 0 {
            expected.push(("produce", cid));
        }
        if i % 5 == 4 {
            expected.push(("api_versions", c.send(&ApiVersionsRequest::default(), 3)));
        }
    }
    let mut next_offset = [0i64; 2];
    for (i, (kind, want)) in expected.into_iter().enumerate() {
        match kind {
            "produce" => {
                let (cid, resp) = c.recv::<ProduceRequest>(9);
                assert_eq!(cid, want, "response {i} out of order");
                let part = &resp.responses[0].partition_responses[0];
                assert_eq!(part.error_code, 0);
                // Offsets per partition only grow (acks=0 batches in between took some).
                let p = part.index as usize;
                assert!(part.base_offset >= next_offset[p]);
                next_offset[p] = part.base_offset + 1;
            }
            _ => {
                let (cid, resp) = c.recv::<ApiVersionsRequest>(3);
                assert_eq!((cid, resp.error_code), (want, 0));
            }
        }
    }
    // Every record, acks=0 ones included, was appended in request order: partition p got
    // requests i = p, p+2, ..., so offsets are dense 0..10 on each.
    for p in 0..2 {
        let data = fetch(&mut c, "t", p, 0, 0);
        assert_eq!(data.high_watermark, 10);
        let ts: Vec<i64> = decode_values(data.records.unwrap())
            .into_iter()
            .map(|(o, _)| o)
            .collect();
        assert_eq!(ts, (0..10).collect::<Vec<_>>());
    }
}

#[test]
fn a_close_in_the_pipeline_comes_after_the_earlier_answers() {
    let server = start("memory://", "");
    let mut c = Client::connect(port(&server));
    assert_eq!(create_topic(&mut c, "t", 1, &[]), 0);
    let p = (-1, -1, -1);
    let c1 = c.send(&produce_request("t", 0, 1, records(&[b"a"], 1, p)), 9);
    // acks=0 to a topic that does not exist: Kafka closes the connection instead of answering.
    c.send(&produce_request("missing", 0, 0, records(&[b"b"], 2, p)), 9);
    c.send(&produce_request("t", 0, 1, records(&[b"c"], 3, p)), 9);
    let (cid, resp) = c.recv::<ProduceRequest>(9);
    assert_eq!(
        (cid, resp.responses[0].partition_responses[0].error_code),
        (c1, 0)
    );
    assert!(c.read_raw().is_none(), "connection should be closed");
    // The request after the close was not processed.
    let mut c2 = Client::connect(port(&server));
    assert_eq!(fetch(&mut c2, "t", 0, 0, 0).high_watermark, 1);
}
