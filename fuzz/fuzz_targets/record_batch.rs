//! Record-batch validation and decoding, on the bytes as given and with their length and CRC
//! made valid (so the fuzzer explores what comes after the CRC check).
//! Point `check` at the full validator (`records::validate`) once it exists.
#![no_main]

use kop_core::records::{batch, decode};
use libfuzzer_sys::fuzz_target;

fn check(b: &[u8]) {
    if batch::validate(b).is_ok() {
        let _ = decode::decode_records(b);
    }
    let _ = decode::record_points(b);
}

fuzz_target!(init: kop_fuzz::write_seeds(kop_fuzz::sample_batches), |data: &[u8]| {
    for b in batch::split_batches(data).unwrap_or_default() {
        check(b);
    }
    let mut sealed = data.to_vec();
    kop_fuzz::seal(&mut sealed);
    check(&sealed);
});
