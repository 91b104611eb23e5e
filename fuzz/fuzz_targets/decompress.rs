//! Decompression as kop does it (gzip, snappy raw and xerial, lz4 frame, zstd), then the
//! records inside. The first byte picks the codec (and a record count); the rest is the
//! compressed payload, wrapped by the target in a batch header so it goes through
//! `decode::decode_records`, kop's only decompressing path.
#![no_main]

use kop_core::records::decode;
use libfuzzer_sys::fuzz_target;

fn seeds() -> Vec<Vec<u8>> {
    let records = kop_fuzz::encode_records(&[
        (None, Some(b"hello hello hello hello"), &[]),
        (Some(b"k"), Some(b"v"), &[("h", Some(b"x"))]),
    ]);
    let mut out = Vec::new();
    for codec in 0..=4u8 {
        let mut seed = vec![codec | (2 << 3)];
        seed.extend_from_slice(&kop_fuzz::compress(i16::from(codec), &records));
        out.push(seed);
    }
    let mut xerial = vec![2 | (2 << 3)];
    xerial.extend_from_slice(&kop_fuzz::xerial_snappy(&records));
    out.push(xerial);
    out
}

fuzz_target!(init: kop_fuzz::write_seeds(seeds), |data: &[u8]| {
    let [pick, payload @ ..] = data else {
        return;
    };
    let codec = i16::from(pick & 0x07);
    let count = i32::from(pick >> 3);
    let mut batch = kop_fuzz::batch_header(codec, count, (-1, -1, -1));
    batch.extend_from_slice(payload);
    kop_fuzz::seal(&mut batch);
    let _ = decode::decode_records(&batch);
});
