//! Shared pieces of kop's fuzz targets: seed inputs and v2 record batches (built with kop's
//! own `records::encode`).
//!
//! Seeds: every target takes `init: kop_fuzz::write_seeds(...)`. When the environment variable
//! `KOP_FUZZ_SEEDS` names a directory, the target writes its seed inputs there before libFuzzer
//! reads its corpus, so `scripts/fuzz.sh` passes the same directory as the corpus and no corpus
//! is committed to the repository.

use kop_core::records::batch::HEADER_LEN;
use kop_core::records::encode::{self, NewRecord};

/// kop's production allocator, as `kop._native` registers it: requests of 1 GiB and more (a
/// decoder reserving capacity for a count read from the wire) get lazily committed address
/// space. The targets must run with it for an out-of-memory report to mean what it would in
/// kop (docs/fuzzing.md, memory limits).
#[global_allocator]
static ALLOCATOR: kop_core::alloc_guard::GuardedAlloc = kop_core::alloc_guard::GuardedAlloc;

/// Writes `seeds()` to `$KOP_FUZZ_SEEDS/seed-<n>` if that variable is set.
pub fn write_seeds(seeds: fn() -> Vec<Vec<u8>>) {
    let Some(dir) = std::env::var_os("KOP_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create the seed directory");
    for (n, seed) in seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{n:03}")), seed).expect("write a seed");
    }
}

/// One record: key, value, headers.
pub type Record<'a> = (
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    &'a [(&'a str, Option<&'a [u8]>)],
);

/// The records section of a batch (before compression), with kop's own encoder.
pub fn encode_records(records: &[Record<'_>]) -> Vec<u8> {
    let records: Vec<NewRecord> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value, headers))| NewRecord {
            timestamp_delta: i as i64,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: headers
                .iter()
                .map(|(name, value)| (name.as_bytes().to_vec(), value.map(<[u8]>::to_vec)))
                .collect(),
        })
        .collect();
    encode::encode_records(&records)
}

/// Compresses a records section with Kafka's codec number (0 none, 1 gzip, 2 snappy, 3 lz4,
/// 4 zstd), as clients do; snappy raw, as librdkafka sends it (`xerial_snappy`: Java's framing).
pub fn compress(codec: i16, data: &[u8]) -> Vec<u8> {
    match codec {
        2 => snap::raw::Encoder::new()
            .compress_vec(data)
            .expect("snappy"),
        _ => encode::compress(codec, data),
    }
}

/// Snappy in the "xerial" framing Java clients use.
pub fn xerial_snappy(data: &[u8]) -> Vec<u8> {
    encode::compress(2, data)
}

/// A v2 batch header (61 bytes) for `count` records, length and CRC left zero (see `seal`).
pub fn batch_header(attributes: i16, count: i32, producer: (i64, i16, i32)) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN);
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&0i32.to_be_bytes()); // batch length
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(count - 1).max(0).to_be_bytes()); // last offset delta
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes()); // base timestamp
    b.extend_from_slice(&(1_700_000_000_000i64 + i64::from(count)).to_be_bytes());
    b.extend_from_slice(&producer.0.to_be_bytes());
    b.extend_from_slice(&producer.1.to_be_bytes());
    b.extend_from_slice(&producer.2.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b
}

/// Sets the batch length and CRC of `batch` from its bytes (no-op if too short for a header):
/// lets a target get past the CRC check so the fuzzer explores what follows it.
pub fn seal(batch: &mut [u8]) {
    if batch.len() >= HEADER_LEN {
        encode::seal(batch);
    }
}

/// A complete, valid v2 batch of `records` compressed with `codec`.
pub fn batch(codec: i16, records: &[Record<'_>]) -> Vec<u8> {
    let mut b = batch_header(codec, records.len() as i32, (-1, -1, -1));
    b.extend_from_slice(&compress(codec, &encode_records(records)));
    seal(&mut b);
    b
}

/// Valid batches of every codec and a few shapes (the record_batch / decompress seeds).
pub fn sample_batches() -> Vec<Vec<u8>> {
    let headers: &[(&str, Option<&[u8]>)] = &[("h", Some(b"v")), ("null", None)];
    let recs: &[Record<'_>] = &[
        (None, Some(b"hello"), &[]),
        (Some(b"key"), Some(b"value value value value"), headers),
        (Some(b""), None, &[]),
    ];
    let mut out = Vec::new();
    for codec in 0..=4 {
        out.push(batch(codec, recs));
        out.push(batch(codec, &recs[..1]));
    }
    let mut xerial = batch_header(2, recs.len() as i32, (-1, -1, -1));
    xerial.extend_from_slice(&xerial_snappy(&encode_records(recs)));
    seal(&mut xerial);
    out.push(xerial);
    // idempotent, transactional, control (commit marker) batches
    let mut idem = batch_header(0, 1, (1000, 0, 5));
    idem.extend_from_slice(&encode_records(&recs[..1]));
    seal(&mut idem);
    out.push(idem);
    let mut txn = batch_header(0x10, 1, (1000, 0, 0));
    txn.extend_from_slice(&encode_records(&recs[..1]));
    seal(&mut txn);
    out.push(txn);
    let mut control = batch_header(0x30, 1, (1000, 0, -1));
    control.extend_from_slice(&encode_records(&[(
        Some(&[0, 0, 0, 1]),
        Some(&[0, 0, 0, 0, 0, 0]),
        &[],
    )]));
    seal(&mut control);
    out.push(control);
    // two batches back to back (a produce records field / a fetch response)
    out.push([batch(0, &recs[..1]), batch(4, recs)].concat());
    out
}
