//! Shared pieces of kop's fuzz targets: seed inputs, a v2 record-batch builder, and a way to
//! run kop's async decoders to completion without a runtime.
//!
//! Seeds: every target takes `init: kop_fuzz::write_seeds(...)`. When the environment variable
//! `KOP_FUZZ_SEEDS` names a directory, the target writes its seed inputs there before libFuzzer
//! reads its corpus, so `scripts/fuzz.sh` passes the same directory as the corpus and no corpus
//! is committed to the repository.

use std::future::Future;
use std::io::Write;
use std::task::{Context, Poll, Waker};

use kop_core::records::batch::{compute_crc, HEADER_LEN, LOG_OVERHEAD};

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

/// Polls a future once. kop's frame reader over an in-memory slice and its SASL steps without
/// hooks never wait, so `None` (it would wait) means the input made kop block.
pub fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Zigzag varint, as record fields are encoded.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// One record: key, value, headers.
pub type Record<'a> = (
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    &'a [(&'a str, Option<&'a [u8]>)],
);

/// The records section of a batch (before compression).
pub fn encode_records(records: &[Record<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (key, value, headers)) in records.iter().enumerate() {
        let mut body = vec![0u8]; // attributes
        put_varlong(&mut body, i as i64); // timestamp delta
        put_varlong(&mut body, i as i64); // offset delta
        put_bytes(&mut body, *key);
        put_bytes(&mut body, *value);
        put_varlong(&mut body, headers.len() as i64);
        for (name, value) in *headers {
            put_bytes(&mut body, Some(name.as_bytes()));
            put_bytes(&mut body, *value);
        }
        put_varlong(&mut out, body.len() as i64);
        out.extend_from_slice(&body);
    }
    out
}

/// Compresses a records section with Kafka's codec number (0 none, 1 gzip, 2 snappy, 3 lz4,
/// 4 zstd), as clients do (snappy: raw, as librdkafka sends it).
pub fn compress(codec: i16, data: &[u8]) -> Vec<u8> {
    match codec {
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).expect("gzip");
            e.finish().expect("gzip")
        }
        2 => snap::raw::Encoder::new()
            .compress_vec(data)
            .expect("snappy"),
        3 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).expect("lz4");
            e.finish().expect("lz4")
        }
        4 => ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest),
        _ => data.to_vec(),
    }
}

/// Snappy in the "xerial" framing Java clients use.
pub fn xerial_snappy(data: &[u8]) -> Vec<u8> {
    let mut out = b"\x82SNAPPY\x00".to_vec();
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    for chunk in data.chunks(64) {
        let c = compress(2, chunk);
        out.extend_from_slice(&(c.len() as u32).to_be_bytes());
        out.extend_from_slice(&c);
    }
    out
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
    if batch.len() < HEADER_LEN {
        return;
    }
    let len = (batch.len() - LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
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
