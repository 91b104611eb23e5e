//! Record-batch validation (`records::validate`, what Produce runs on every batch) and
//! decoding, on the bytes as given and with their length and CRC made valid (so the fuzzer
//! explores what comes after the CRC check).
#![no_main]

use kop_core::records::validate::{validate_batch, Rules};
use kop_core::records::{batch, decode};
use libfuzzer_sys::fuzz_target;

fn check(b: &[u8]) {
    // Timestamps unbounded so that random ones reach the record checks; compacted topics
    // add the key check.
    let open = Rules {
        timestamp_before_max_ms: i64::MAX,
        timestamp_after_max_ms: i64::MAX,
        ..Rules::kafka_defaults("fuzz", 0, 0)
    };
    let accepted = validate_batch(b, &open).is_ok();
    let _ = validate_batch(
        b,
        &Rules {
            compacted: true,
            ..open
        },
    );
    if accepted {
        let _ = decode::decode_records(b);
    }
    let _ = decode::record_points(b);
}

fuzz_target!(init: kop_fuzz::write_seeds(kop_fuzz::sample_batches), |data: &[u8]| {
    check(data);
    for b in batch::split_batches(data).unwrap_or_default() {
        check(b);
    }
    let mut sealed = data.to_vec();
    kop_fuzz::seal(&mut sealed);
    check(&sealed);
});
