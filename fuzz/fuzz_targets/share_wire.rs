//! The hand-written decoders of ShareFetch and ShareAcknowledge v2 and DescribeShareGroupOffsets
//! v1 (`handlers/share_wire.rs`; the `kafka-protocol` crate stops below them): the first byte
//! picks the request, the rest is the body. A decode must end in Ok or Malformed, never a panic or an allocation the body does
//! not pay for.
#![no_main]

use bytes::Bytes;
use kop_core::handlers::{decode_share_v2_body, share_v2_sample_bodies};
use libfuzzer_sys::fuzz_target;

/// The API key for the first input byte.
const PICKS: [i16; 3] = [78, 79, 90];

fn seeds() -> Vec<Vec<u8>> {
    share_v2_sample_bodies()
        .into_iter()
        .map(|(key, body)| {
            let pick = PICKS.iter().position(|&k| k == key).expect("a served key");
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
    let key = PICKS[*pick as usize % PICKS.len()];
    let _ = decode_share_v2_body(key, Bytes::copy_from_slice(body));
});
