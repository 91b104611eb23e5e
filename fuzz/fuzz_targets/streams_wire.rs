//! The hand-written decoders of StreamsGroupHeartbeat and StreamsGroupDescribe
//! (`handlers/streams_wire.rs`; the `kafka-protocol` crate has no Streams messages): the first
//! byte picks the request and its version (0–1), the rest is the body. A decode must end in
//! Ok or Malformed, never a panic or an allocation the body does not pay for.
#![no_main]

use bytes::Bytes;
use kop_core::handlers::{decode_streams_body, streams_sample_bodies};
use libfuzzer_sys::fuzz_target;

/// (API key, version) for the first input byte.
const PICKS: [(i16, i16); 4] = [(88, 0), (88, 1), (89, 0), (89, 1)];

fn seeds() -> Vec<Vec<u8>> {
    streams_sample_bodies()
        .into_iter()
        .map(|(key, version, body)| {
            let pick = PICKS
                .iter()
                .position(|&p| p == (key, version))
                .expect("a served key and version");
            let mut seed = vec![pick as u8];
            seed.extend_from_slice(&body);
            seed
        })
        .collect()
}

fuzz_target!(init: kop_fuzz::write_seeds(seeds), |data: &[u8]| {
    let [pick, body @ ..] = data else {
        return;
    };
    let (key, version) = PICKS[*pick as usize % PICKS.len()];
    let _ = decode_streams_body(key, version, Bytes::copy_from_slice(body));
});
