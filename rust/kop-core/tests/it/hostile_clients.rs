//! Clients that try to hold the server hostage (issue 12): size prefixes with no body, frames
//! that stall half way, crowds of unauthenticated connections. Other clients must keep their
//! normal latency; the hostile connections are closed, or muted, on their own.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kop_core::{RunningServer, ServerConfig};

/// What a served client may take while the server is under attack (its normal is ~1 ms).
const NORMAL: Duration = Duration::from_secs(1);

fn start_with(listeners: &[&str], extra: &str) -> RunningServer {
    let listeners = listeners
        .iter()
        .map(|l| format!("\"{l}://127.0.0.1:0\""))
        .collect::<Vec<_>>()
        .join(",");
    let json = format!(
        r#"{{"listeners": [{listeners}], "storage": "memory://", "io_threads": 2,
            "sasl_users": ["alice:alice-pw"], "failed_authentication_delay_ms": 0 {extra}}}"#
    );
    RunningServer::start(ServerConfig::from_json(&json).unwrap()).unwrap()
}

fn port_of(server: &RunningServer, name: &str) -> u16 {
    server
        .listeners()
        .iter()
        .find(|l| l.name == name)
        .unwrap()
        .port
}

/// A raw connection that sends `bytes` and then nothing.
fn hostile(port: u16, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(bytes).unwrap();
    s
}

/// Whether the server closes `s` within `within` (EOF or reset).
fn closed_within(mut s: &TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => panic!("a hostile connection got an answer"),
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// A client's round trip: ApiVersions, Metadata of `topic`, a produce and a fetch of it.
fn round_trip(c: &mut Client, topic_name: &str) -> Duration {
    let t = Instant::now();
    let av: ApiVersionsResponse = c.call(&ApiVersionsRequest::default(), 0);
    assert_eq!(av.error_code, 0);
    let md: MetadataResponse = c.call(
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic(topic_name))),
        ])),
        9,
    );
    assert_eq!(md.topics[0].error_code, 0);
    let p = produce(
        c,
        topic_name,
        0,
        records(&[b"during the attack".as_slice()], 0, (-1, -1, -1)),
    );
    assert_eq!(p.error_code, 0);
    let f = fetch(c, topic_name, 0, p.base_offset, 0);
    assert_eq!(f.error_code, 0);
    t.elapsed()
}

/// Logs in with SASL/PLAIN (SaslHandshake v1, SaslAuthenticate); the SaslAuthenticate error.
fn plain_login(c: &mut Client, user: &str, password: &str) -> i16 {
    let hs: SaslHandshakeResponse = c.call(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        1,
    );
    assert_eq!(hs.error_code, 0);
    let token = format!("\0{user}\0{password}");
    let r: SaslAuthenticateResponse = c.call(
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
        2,
    );
    r.error_code
}

#[test]
fn size_prefixes_without_a_body_hold_nothing_and_are_closed_when_they_stall() {
    // The pool holds exactly one largest frame: under the old design one prefix froze all.
    let server = start_with(
        &["PLAINTEXT"],
        r#", "max_request_bytes": 100000000, "request_memory_bytes": 100000000,
            "frame_stall_timeout_ms": 1500"#,
    );
    let port = port_of(&server, "PLAINTEXT");
    let mut connected = Client::connect(port);
    assert_eq!(create_topic(&mut connected, "t", 1, &[]), 0);
    let baseline = round_trip(&mut connected, "t");

    let started = Instant::now();
    let prefix = 100_000_000i32.to_be_bytes();
    let mut stalled: Vec<TcpStream> = (0..3).map(|_| hostile(port, &prefix)).collect();
    // Half a body after the prefix: this one holds what it sent (about 1 MB), no more.
    let mut half = prefix.to_vec();
    half.extend(std::iter::repeat_n(7u8, 1 << 20));
    stalled.push(hostile(port, &half));
    std::thread::sleep(Duration::from_millis(200));

    let during_connected = round_trip(&mut connected, "t");
    let mut fresh = Client::connect(port);
    let during_new = round_trip(&mut fresh, "t");
    assert!(
        during_connected < NORMAL && during_new < NORMAL,
        "baseline {baseline:?}, during the attack: connected client {during_connected:?}, new client {during_new:?}"
    );
    // The stalled connections are closed once frame_stall_timeout_ms has passed, not before.
    for s in &stalled {
        assert!(
            closed_within(s, Duration::from_secs(10)),
            "a stalled connection stayed open"
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(1400));
    round_trip(&mut connected, "t");
}

#[test]
fn a_client_that_finds_no_memory_is_muted_alone_until_memory_comes_back() {
    let server = start_with(
        &["PLAINTEXT"],
        r#", "max_request_bytes": 1000000, "request_memory_bytes": 1048576,
            "frame_stall_timeout_ms": 2000"#,
    );
    let port = port_of(&server, "PLAINTEXT");
    let mut admin = Client::connect(port);
    assert_eq!(create_topic(&mut admin, "t", 1, &[]), 0);

    // 700 kB of a 1 MB frame, then nothing: its buffer (and reservation) has grown to 1 MB.
    let mut greedy_bytes = 1_000_000i32.to_be_bytes().to_vec();
    greedy_bytes.extend(std::iter::repeat_n(1u8, 700_000));
    let greedy = hostile(port, &greedy_bytes);
    std::thread::sleep(Duration::from_millis(500));

    // A 400 kB produce does not fit in what is left: that client waits, muted ...
    let big = vec![b'x'; 400_000];
    let mut muted = Client::connect(port);
    let sent = Instant::now();
    muted.send(
        &produce_request("t", 0, -1, records(&[big.as_slice()], 0, (-1, -1, -1))),
        9,
    );
    // ... while small requests of everybody else go ahead.
    std::thread::sleep(Duration::from_millis(300));
    let small = round_trip(&mut admin, "t");
    assert!(small < NORMAL, "a small request took {small:?}");

    // Once the greedy one is closed (stalled), the muted one is served.
    assert!(closed_within(&greedy, Duration::from_secs(10)));
    let (_, resp) = muted.recv::<ProduceRequest>(9);
    let waited = sent.elapsed();
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert!(
        waited >= Duration::from_millis(1000),
        "the produce was not held back ({waited:?}): the test did not exhaust the pool"
    );
}

#[test]
fn unauthenticated_connections_have_a_count_limit_and_logins_keep_working() {
    let server = start_with(
        &["PLAINTEXT", "SASL_PLAINTEXT"],
        r#", "max_unauthenticated_connections": 25, "frame_stall_timeout_ms": 2000"#,
    );
    let sasl = port_of(&server, "SASL_PLAINTEXT");
    let plain = port_of(&server, "PLAINTEXT");
    let mut admin = Client::connect(plain);
    assert_eq!(create_topic(&mut admin, "t", 1, &[]), 0);

    // 20 unauthenticated connections, each a 512 KiB size prefix and nothing more.
    let prefix = 524_288i32.to_be_bytes();
    let hostile_conns: Vec<TcpStream> = (0..20).map(|_| hostile(sasl, &prefix)).collect();
    std::thread::sleep(Duration::from_millis(200));

    // A login (it holds a place until it has authenticated) and its requests: normal latency.
    let t = Instant::now();
    let mut alice = Client::connect(sasl);
    assert_eq!(plain_login(&mut alice, "alice", "alice-pw"), 0);
    round_trip(&mut alice, "t");
    assert!(
        t.elapsed() < NORMAL,
        "login + requests took {:?}",
        t.elapsed()
    );
    assert!(round_trip(&mut admin, "t") < NORMAL);

    // Five more that say nothing fill the 25 places: the next one is closed at once.
    let mut idle: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(("127.0.0.1", sasl)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let refused = TcpStream::connect(("127.0.0.1", sasl)).unwrap();
    assert!(closed_within(&refused, Duration::from_secs(2)));
    // Authenticated and plaintext clients are not affected by the limit.
    round_trip(&mut alice, "t");
    round_trip(&mut admin, "t");

    // The stalled prefixes are closed after frame_stall_timeout_ms; their places come back.
    for s in &hostile_conns {
        assert!(closed_within(s, Duration::from_secs(10)));
    }
    let mut bob = Client::connect(sasl);
    assert_eq!(plain_login(&mut bob, "alice", "alice-pw"), 0);
    round_trip(&mut bob, "t");
    // The silent ones are idle, not stalled: they stay until connections_max_idle_ms.
    assert!(!closed_within(&idle[0], Duration::from_millis(100)));
    idle.clear();
}

#[test]
fn unauthenticated_memory_is_separate_and_a_client_that_exhausts_it_is_closed() {
    let server = start_with(
        &["PLAINTEXT", "SASL_PLAINTEXT"],
        r#", "unauthenticated_request_memory_bytes": 100000, "frame_stall_timeout_ms": 3000"#,
    );
    let sasl = port_of(&server, "SASL_PLAINTEXT");
    let plain = port_of(&server, "PLAINTEXT");
    let mut admin = Client::connect(plain);
    assert_eq!(create_topic(&mut admin, "t", 1, &[]), 0);

    // Each sends 40 kB of a 512 KiB pre-authentication frame and stalls: 32 kB of it counts
    // (8 KiB of every frame are free), so the 100 kB pool takes three, and the others are
    // closed as soon as they find it empty, long before the stall timeout.
    let mut bytes = 524_288i32.to_be_bytes().to_vec();
    bytes.extend(std::iter::repeat_n(3u8, 40_000));
    let greedy: Vec<TcpStream> = (0..8).map(|_| hostile(sasl, &bytes)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let closed_fast = greedy
        .iter()
        .filter(|s| closed_within(s, Duration::from_millis(300)))
        .count();
    // A survivor holds at least 40 kB - 8 KiB (all it sent): at most three fit.
    assert!(
        (5..8).contains(&closed_fast),
        "{closed_fast} of 8 closed at once; expected all but one to three"
    );

    // Logins (small frames) and authenticated clients still work, with normal latency; a
    // 500 kB produce after login uses the shared pool, not the unauthenticated one.
    let t = Instant::now();
    let mut alice = Client::connect(sasl);
    assert_eq!(plain_login(&mut alice, "alice", "alice-pw"), 0);
    let big = vec![b'y'; 500_000];
    let p = produce(
        &mut alice,
        "t",
        0,
        records(&[big.as_slice()], 0, (-1, -1, -1)),
    );
    assert_eq!(p.error_code, 0);
    assert!(
        t.elapsed() < NORMAL,
        "login + produce took {:?}",
        t.elapsed()
    );
    assert!(round_trip(&mut admin, "t") < NORMAL);
}

#[test]
fn raw_sasl_tokens_are_bounded_like_frames() {
    // After SaslHandshake v0 the tokens are raw (size, bytes); a token prefix holds nothing
    // and stalls like a frame.
    let server = start_with(&["SASL_PLAINTEXT"], r#", "frame_stall_timeout_ms": 1000"#);
    let sasl = port_of(&server, "SASL_PLAINTEXT");
    let mut c = Client::connect(sasl);
    let hs: SaslHandshakeResponse = c.call(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        0,
    );
    assert_eq!(hs.error_code, 0);
    c.send_raw(&524_288i32.to_be_bytes());
    let t = Instant::now();
    assert!(c.read_raw().is_none(), "closed, not answered");
    assert!(t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(5));
    // A token above Kafka's sasl.server.max.receive.size is refused from its size alone.
    let mut c = Client::connect(sasl);
    let _: SaslHandshakeResponse = c.call(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        0,
    );
    c.send_raw(&524_289i32.to_be_bytes());
    let t = Instant::now();
    assert!(c.read_raw().is_none());
    assert!(t.elapsed() < Duration::from_millis(900));
}

/// ApiVersions v3 on `c`: whether it was answered with no error.
fn api_versions_ok(c: &mut Client) -> bool {
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("kop-test"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    c.call(&req, 3).error_code == 0
}

#[test]
fn connections_over_max_connections_per_ip_are_closed_and_places_come_back() {
    let server = start_with(&["PLAINTEXT"], r#", "max_connections_per_ip": 3"#);
    let port = port_of(&server, "PLAINTEXT");
    let mut served: Vec<Client> = (0..3).map(|_| Client::connect(port)).collect();
    for c in &mut served {
        assert!(api_versions_ok(c));
    }
    let over = TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(
        closed_within(&over, Duration::from_secs(2)),
        "a fourth from 127.0.0.1"
    );
    served.pop();
    std::thread::sleep(Duration::from_millis(200));
    let mut again = Client::connect(port);
    assert!(
        api_versions_ok(&mut again),
        "a closed connection gave its place back"
    );
    assert!(
        api_versions_ok(&mut served[0]),
        "the others are served throughout"
    );
}

#[test]
fn at_max_connections_a_new_connection_waits_until_one_closes() {
    let server = start_with(&["PLAINTEXT"], r#", "max_connections": 2"#);
    let port = port_of(&server, "PLAINTEXT");
    let mut first = Client::connect(port);
    let mut second = Client::connect(port);
    assert!(api_versions_ok(&mut first) && api_versions_ok(&mut second));

    // The kernel completes the handshake, but kop does not serve the third yet.
    let mut third = Client::connect(port);
    third.set_read_timeout(Duration::from_millis(700));
    let req = ApiVersionsRequest::default();
    third.send(&req, 0);
    assert!(third.read_raw().is_none(), "answered over max_connections");

    drop(first);
    third.set_read_timeout(Duration::from_secs(5));
    let answer = third.read_raw();
    assert!(answer.is_some(), "not served after a connection closed");
    assert!(api_versions_ok(&mut second));
}
