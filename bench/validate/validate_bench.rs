//! Cost of produce-side batch validation (`records::validate::validate_batch`) per codec.
//!
//!     cargo run --release -p kop-core --example validate_bench [seconds-per-case]
//!
//! For each codec and two batch shapes it reports how fast batches are validated, in MB/s of
//! batch bytes (what the client sent) and of record bytes (decompressed), next to the CRC-32C
//! alone (what kop checked before). Record values are word-like text, so the codecs compress
//! them about as much as real JSON-ish payloads.

use std::time::{Duration, Instant};

use kop_core::records::batch::compute_crc;
use kop_core::records::compression::{GZIP, LZ4, NONE, SNAPPY, ZSTD};
use kop_core::records::encode::{encode_batch, encode_records, BatchSpec, NewRecord};
use kop_core::records::validate::{validate_batch, Rules};

const NOW: i64 = 1_700_000_000_000;

fn text(seed: &mut u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "kafka",
        "record",
        "batch",
        "offset",
        "partition",
        "topic",
        "value",
        "key",
        "\"id\":",
        "42",
        "true",
        "null",
        "{",
        "}",
        "timestamp",
        "producer",
        "consumer",
        "lorem",
        "ipsum",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(WORDS[(*seed >> 33) as usize % WORDS.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

fn records(n: usize, value_len: usize) -> Vec<NewRecord> {
    let mut seed = 7;
    (0..n)
        .map(|i| NewRecord {
            timestamp_delta: i as i64,
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(text(&mut seed, value_len)),
            headers: vec![(b"trace".to_vec(), Some(b"abc123".to_vec()))],
        })
        .collect()
}

/// Runs `f` repeatedly for about `secs`; returns iterations per second.
fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let rules = Rules {
        max_message_bytes: i32::MAX,
        ..Rules::kafka_defaults("bench", 0, NOW)
    };
    println!(
        "{:<8} {:>22} {:>10} {:>10} {:>12} {:>12} {:>12}",
        "codec", "batch", "bytes", "records B", "validate MB/s", "records MB/s", "crc MB/s"
    );
    for (shape, n, value_len) in [
        ("16 KiB, 100 x 150 B", 100, 150),
        ("1 MiB, 1000 x 1 KiB", 1000, 1024),
    ] {
        let recs = records(n, value_len);
        let raw_len = encode_records(&recs).len();
        for (name, codec) in [
            ("none", NONE),
            ("gzip", GZIP),
            ("snappy", SNAPPY),
            ("lz4", LZ4),
            ("zstd", ZSTD),
        ] {
            let batch = encode_batch(&BatchSpec::plain(NOW, codec), &recs);
            validate_batch(&batch, &rules).expect("a valid batch");
            let per_sec = rate(secs, || {
                std::hint::black_box(validate_batch(std::hint::black_box(&batch), &rules).is_ok());
            });
            let crc_per_sec = rate(secs / 4.0, || {
                std::hint::black_box(compute_crc(std::hint::black_box(&batch)));
            });
            let mb = |bytes: usize, per_sec: f64| bytes as f64 * per_sec / 1e6;
            println!(
                "{:<8} {:>22} {:>10} {:>10} {:>12.0} {:>12.0} {:>12.0}",
                name,
                shape,
                batch.len(),
                raw_len,
                mb(batch.len(), per_sec),
                mb(raw_len, per_sec),
                mb(batch.len(), crc_per_sec),
            );
        }
    }
}
