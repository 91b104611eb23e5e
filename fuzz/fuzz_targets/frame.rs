//! Bytes as a client sends them on a connection: size-prefixed frames (`FrameReader`), each
//! request header (`decode_header`), then, for a served API and version, the body as the
//! dispatcher decodes it. Several frames per input, as on a real connection.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::Encodable;
use kop_core::codec::frame::{decode_header, FrameRules, MIN_REQUEST};
use kop_core::codec::frame_reader::FrameReader;
use kop_core::codec::memory::{MemoryPool, WhenExhausted};
use kop_core::handlers::{decode_body, default_body, max_served, served_range, SERVED};
use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

/// The largest frame accepted here. kop's default `max_request_bytes` is 100 MB; the size
/// checks are the same whatever the limit, and a small one keeps each run fast.
const MAX_FRAME: i32 = 1 << 20;

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut stream = Vec::new();
    for &(key, _, max) in SERVED {
        let Ok(body) = default_body(key, max) else {
            continue;
        };
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(max)
            .with_correlation_id(7)
            .with_client_id(Some("fuzz".into()));
        let mut frame = bytes::BytesMut::new();
        header
            .encode(&mut frame, key.request_header_version(max))
            .expect("header");
        frame.extend_from_slice(&body);
        let mut one = (frame.len() as i32).to_be_bytes().to_vec();
        one.extend_from_slice(&frame);
        if stream.len() < 512 {
            stream.extend_from_slice(&one);
        }
        out.push(one);
    }
    out.push(stream);
    out
}

/// `FrameReader` bounds its waits with tokio timers: a runtime with time enabled.
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio runtime")
    })
}

const RULES: FrameRules = FrameRules {
    min_size: MIN_REQUEST,
    max_size: MAX_FRAME,
    idle: Duration::from_secs(1),
    stall: Duration::from_secs(1),
};

fuzz_target!(init: kop_fuzz::write_seeds(seeds), |data: &[u8]| {
    // Room for any one frame: reading from a slice never waits for bytes or memory.
    let pool = MemoryPool::new(2 * MAX_FRAME as usize, 8192, WhenExhausted::Fail);
    let mut reader = FrameReader::new(data);
    loop {
        let read = runtime().block_on(reader.read_frame(&RULES, &pool));
        let Ok(Some((frame, _memory))) = read else {
            return;
        };
        let Ok(request) = decode_header(frame, max_served) else {
            return;
        };
        // The dispatcher's version gate, then the body decode it does.
        let version = request.header.request_api_version;
        if served_range(request.api_key).is_some_and(|(min, max)| (min..=max).contains(&version)) {
            let _ = decode_body(&request.header, request.api_key, request.body);
        }
    }
});
