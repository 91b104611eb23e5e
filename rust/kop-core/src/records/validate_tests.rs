//! Each malformed case of `validate_batch`, with Kafka's error code.

use super::*;
use crate::records::compression::{GZIP, LZ4, NONE, SNAPPY, ZSTD};
use crate::records::encode::{compress, encode_batch, encode_records, put_varlong, seal};
use crate::records::encode::{BatchSpec, NewRecord};

const NOW: i64 = 1_700_000_000_000;

fn rules() -> Rules<'static> {
    Rules::kafka_defaults("t", 0, NOW)
}

fn rec(key: Option<&[u8]>, value: &[u8]) -> NewRecord {
    NewRecord {
        key: key.map(<[u8]>::to_vec),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}

fn three() -> Vec<NewRecord> {
    vec![
        rec(Some(b"k0"), b"v0"),
        rec(None, b"v1"),
        rec(Some(b"k2"), b"v2"),
    ]
}

fn plain(codec: i16) -> Vec<u8> {
    encode_batch(&BatchSpec::plain(NOW, codec), &three())
}

/// A batch around a records payload of our own making (count and last offset delta given).
fn with_payload(codec: i16, count: i32, last_offset_delta: i32, records: &[u8]) -> Vec<u8> {
    let mut b = encode_batch(&BatchSpec::plain(NOW, codec), &[NewRecord::default()]);
    b.truncate(HEADER_LEN);
    b[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
    b[57..61].copy_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&compress(codec, records));
    seal(&mut b);
    b
}

/// Edits bytes of a valid batch, then fixes its CRC (so the case is not about the CRC).
fn edited(mut b: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
    b[at..at + bytes.len()].copy_from_slice(bytes);
    seal(&mut b);
    b
}

fn code(records: &[u8]) -> KafkaError {
    code_with(records, &rules())
}

fn code_with(records: &[u8], rules: &Rules) -> KafkaError {
    validate_batch(records, rules).expect_err("refused").error
}

#[test]
fn valid_batches_of_every_codec_pass() {
    for codec in [NONE, GZIP, SNAPPY, LZ4, ZSTD] {
        let b = plain(codec);
        let v = validate_batch(&b, &rules()).unwrap_or_else(|e| panic!("codec {codec}: {e}"));
        assert_eq!(v.size, b.len());
        assert_eq!(v.header.records_count, 3);
        assert_eq!(v.max_timestamp, NOW);
    }
}

#[test]
fn no_whole_batch_is_invalid_record() {
    let b = plain(NONE);
    assert_eq!(code(&[]), KafkaError::InvalidRecord);
    assert_eq!(code(&b[..b.len() - 1]), KafkaError::InvalidRecord);
    assert_eq!(code(&b[..11]), KafkaError::InvalidRecord);
}

#[test]
fn a_second_batch_is_invalid_record_but_a_partial_tail_is_trimmed() {
    let b = plain(NONE);
    let two = [b.clone(), b.clone()].concat();
    assert_eq!(code(&two), KafkaError::InvalidRecord);
    let tail = [b.clone(), b[..30].to_vec()].concat();
    let v = validate_batch(&tail, &rules()).unwrap();
    assert_eq!(v.size, b.len());
}

#[test]
fn magic_and_length_fields() {
    let b = plain(NONE);
    assert_eq!(
        code(&edited(b.clone(), 16, &[1])),
        KafkaError::InvalidRecord
    );
    assert_eq!(
        code(&edited(b.clone(), 16, &[3])),
        KafkaError::CorruptMessage
    );
    let mut short = b.clone();
    short[8..12].copy_from_slice(&13i32.to_be_bytes());
    assert_eq!(code(&short), KafkaError::CorruptMessage);
    // A length of 20: a whole "batch" of 32 bytes, smaller than a v2 header.
    let mut tiny = b[..32].to_vec();
    tiny[8..12].copy_from_slice(&20i32.to_be_bytes());
    assert_eq!(code(&tiny), KafkaError::CorruptMessage);
}

#[test]
fn base_offset_size_and_crc() {
    let b = plain(NONE);
    assert_eq!(
        code(&edited(b.clone(), 0, &5i64.to_be_bytes())),
        KafkaError::InvalidRecord
    );
    let small = Rules {
        max_message_bytes: b.len() as i32 - 1,
        ..rules()
    };
    assert_eq!(code_with(&b, &small), KafkaError::MessageTooLarge);
    let mut bad_crc = b.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    assert_eq!(code(&bad_crc), KafkaError::CorruptMessage);
}

#[test]
fn offset_range_and_count() {
    let b = plain(NONE);
    assert_eq!(
        code(&edited(b.clone(), 23, &(-1i32).to_be_bytes())),
        KafkaError::InvalidRecord
    );
    let zero = edited(
        edited(b.clone(), 23, &(-1i32).to_be_bytes()),
        57,
        &0i32.to_be_bytes(),
    );
    assert_eq!(code(&zero), KafkaError::InvalidRecord);
    assert_eq!(
        code(&edited(b.clone(), 57, &2i32.to_be_bytes())),
        KafkaError::InvalidRecord
    );
}

#[test]
fn a_count_that_lies_is_invalid_record_for_every_codec() {
    let records = encode_records(&three());
    for codec in [NONE, GZIP, SNAPPY, LZ4, ZSTD] {
        // 3 records claiming i32::MAX (the offset range agrees with the claim).
        let lying = with_payload(codec, i32::MAX, i32::MAX - 1, &records);
        let started = std::time::Instant::now();
        assert_eq!(code(&lying), KafkaError::InvalidRecord, "codec {codec}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // 3 records claiming 2: records left over.
        assert_eq!(
            code(&with_payload(codec, 2, 1, &records)),
            KafkaError::InvalidRecord
        );
        // And the honest count passes.
        assert!(validate_batch(&with_payload(codec, 3, 2, &records), &rules()).is_ok());
    }
}

/// One record with raw fields after its size varint (`body` is what follows the size).
fn raw_record(size: i64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_varlong(&mut out, size);
    out.extend_from_slice(body);
    out
}

fn fields(ts: i64, off: i64, key: i64, value: &[u8], headers: i64) -> Vec<u8> {
    let mut b = vec![0u8];
    put_varlong(&mut b, ts);
    put_varlong(&mut b, off);
    put_varlong(&mut b, key);
    put_varlong(&mut b, value.len() as i64);
    b.extend_from_slice(value);
    put_varlong(&mut b, headers);
    b
}

#[test]
fn records_that_do_not_parse_are_invalid_record_for_every_codec() {
    let good = fields(0, 0, -1, b"v", 0);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "size larger than the fields",
            raw_record(good.len() as i64 + 1, &good),
        ),
        (
            "size smaller than the fields",
            raw_record(good.len() as i64 - 1, &good),
        ),
        ("negative size", raw_record(-5, &good)),
        (
            "truncated",
            raw_record(good.len() as i64, &good[..good.len() - 2]),
        ),
        ("negative header count", {
            let f = fields(0, 0, -1, b"v", -1);
            raw_record(f.len() as i64, &f)
        }),
        ("header count beyond the record", {
            let f = fields(0, 0, -1, b"v", 100);
            raw_record(f.len() as i64, &f)
        }),
        ("key longer than the record", {
            let f = fields(0, 0, 50, b"v", 0);
            raw_record(f.len() as i64, &f)
        }),
        ("offset delta not 0", {
            let f = fields(0, 1, -1, b"v", 0);
            raw_record(f.len() as i64, &f)
        }),
    ];
    let mut neg_header_key = fields(0, 0, -1, b"v", 1);
    put_varlong(&mut neg_header_key, -1);
    put_varlong(&mut neg_header_key, -1);
    cases.push((
        "negative header key",
        raw_record(neg_header_key.len() as i64, &neg_header_key),
    ));
    // A varint of 6 bytes (Kafka reads at most 5 for an int).
    let mut long_varint = vec![0u8, 0];
    long_varint.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    long_varint.extend_from_slice(&[1, 0, 0]);
    cases.push((
        "varint too long",
        raw_record(long_varint.len() as i64, &long_varint),
    ));
    for codec in [NONE, GZIP, SNAPPY, LZ4, ZSTD] {
        for (name, records) in &cases {
            let b = with_payload(codec, 1, 0, records);
            assert_eq!(code(&b), KafkaError::InvalidRecord, "{name}, codec {codec}");
        }
        // The same frame around a good record passes.
        assert!(validate_batch(
            &with_payload(codec, 1, 0, &raw_record(good.len() as i64, &good)),
            &rules()
        )
        .is_ok());
    }
}

/// Kafka 4.4 answers UNKNOWN_SERVER_ERROR (its decompression exception is not mapped).
#[test]
fn compressed_payloads_that_do_not_decompress_are_unknown_server_error() {
    let records = encode_records(&three());
    for codec in [GZIP, SNAPPY, LZ4, ZSTD] {
        let mut b = with_payload(codec, 3, 2, &records);
        // Garbage instead of the compressed stream.
        b.truncate(HEADER_LEN);
        b.extend_from_slice(b"this is not compressed data at all, not even close");
        seal(&mut b);
        assert_eq!(code(&b), KafkaError::UnknownServerError, "codec {codec}");
        // A truncated stream.
        let mut t = with_payload(codec, 3, 2, &records);
        t.truncate(t.len() - 8);
        seal(&mut t);
        assert_eq!(
            code(&t),
            KafkaError::UnknownServerError,
            "codec {codec} truncated"
        );
    }
}

#[test]
fn a_decompression_bomb_is_refused_without_reading_it_all() {
    // One record whose 64 MiB value compresses to a few hundred KiB of gzip; the bound is
    // 1 MiB here, so validation stops early.
    let mut records = Vec::new();
    let body_len = 1 + 1 + 1 + 1 + 5 + (64 << 20) + 1;
    put_varlong(&mut records, body_len as i64);
    records.extend_from_slice(&[0, 0, 0, 1]);
    put_varlong(&mut records, 64 << 20);
    records.resize(records.len() + (64 << 20), 0);
    records.push(0);
    let b = with_payload(GZIP, 1, 0, &records);
    drop(records);
    let bounded = Rules {
        max_uncompressed_bytes: 1 << 20,
        ..rules()
    };
    let started = std::time::Instant::now();
    assert_eq!(code_with(&b, &bounded), KafkaError::InvalidRecord);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn control_and_producer_bits() {
    let b = plain(NONE);
    assert_eq!(
        code(&edited(b.clone(), 21, &0x20i16.to_be_bytes())),
        KafkaError::InvalidRecord
    );
    // A producer id with no sequence.
    let spec = BatchSpec {
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: -1,
        ..BatchSpec::plain(NOW, NONE)
    };
    assert_eq!(
        code(&encode_batch(&spec, &three())),
        KafkaError::InvalidRecord
    );
    let idempotent = BatchSpec {
        base_sequence: 0,
        ..spec
    };
    assert!(validate_batch(&encode_batch(&idempotent, &three()), &rules()).is_ok());
}

#[test]
fn codec_ids_and_zstd_before_v7() {
    let b = plain(ZSTD);
    let v6 = Rules {
        zstd_allowed: false,
        ..rules()
    };
    assert_eq!(code_with(&b, &v6), KafkaError::UnsupportedCompressionType);
    assert_eq!(
        code(&edited(plain(NONE), 21, &5i16.to_be_bytes())),
        KafkaError::UnknownServerError
    );
}

#[test]
fn timestamps_out_of_range_are_invalid_timestamp_with_record_errors() {
    let records = vec![
        NewRecord {
            timestamp_delta: 0,
            ..rec(None, b"ok")
        },
        NewRecord {
            timestamp_delta: 2 * 3_600_000, // two hours ahead of NOW
            ..rec(None, b"future")
        },
        NewRecord {
            timestamp_delta: -10_000,
            ..rec(None, b"past")
        },
    ];
    let b = encode_batch(&BatchSpec::plain(NOW, NONE), &records);
    let r = Rules {
        timestamp_before_max_ms: 5_000,
        ..rules()
    };
    let err = validate_batch(&b, &r).unwrap_err();
    assert_eq!(err.error, KafkaError::InvalidTimestamp);
    let indexes: Vec<i32> = err.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1, 2]);
    assert_eq!(
        err.record_errors[0].message,
        format!(
            "Timestamp {} of message with offset 1 is out of range. The timestamp should be within [{}, {}]",
            NOW + 7_200_000,
            NOW - 5_000,
            NOW + 3_600_000
        )
    );
    assert_eq!(
        err.error_message.as_deref(),
        Some("One or more records have been rejected due to invalid timestamp")
    );
    // The default (no bound in the past) accepts the old record; LogAppendTime topics check
    // no range at all.
    let defaults_err = validate_batch(&b, &rules()).unwrap_err();
    assert_eq!(defaults_err.record_errors.len(), 1);
    let lat = Rules {
        log_append_time: true,
        ..r
    };
    assert!(validate_batch(&b, &lat).is_ok());
}

#[test]
fn log_append_time_set_by_the_producer() {
    let b = edited(plain(NONE), 21, &0x08i16.to_be_bytes());
    let lat = Rules {
        log_append_time: true,
        ..rules()
    };
    let err = validate_batch(&b, &lat).unwrap_err();
    assert_eq!(err.error, KafkaError::InvalidTimestamp);
    assert_eq!(err.record_errors.len(), 3);
    assert!(err.record_errors[0]
        .message
        .ends_with("Producer should not set timestamp type to LogAppendTime."));
    // On a CreateTime topic Kafka takes the batch's max timestamp as every record's.
    let v = validate_batch(&b, &rules()).unwrap();
    assert_eq!(v.max_timestamp, NOW);
}

#[test]
fn compacted_topics_need_keys() {
    let b = plain(NONE); // record 1 has no key
    let compacted = Rules {
        compacted: true,
        topic: "logs",
        partition: 2,
        ..rules()
    };
    let err = validate_batch(&b, &compacted).unwrap_err();
    assert_eq!(err.error, KafkaError::InvalidRecord);
    let msg = "Compacted topic cannot accept message without key in topic partition logs-2";
    assert_eq!(
        err.record_errors,
        vec![BatchIndexError {
            batch_index: 1,
            message: msg.into()
        }]
    );
    assert_eq!(
        err.error_message.unwrap(),
        format!("One or more records have been rejected due to 1 record errors in total, and only showing the first three errors at most: [RecordError(batchIndex=1, message='{msg}')]")
    );
    let keyed = encode_batch(&BatchSpec::plain(NOW, LZ4), &[rec(Some(b"k"), b"v")]);
    assert!(validate_batch(&keyed, &compacted).is_ok());
}

#[test]
fn max_timestamp_is_the_records_largest() {
    let records = vec![
        NewRecord {
            timestamp_delta: 5,
            ..rec(None, b"a")
        },
        NewRecord {
            timestamp_delta: 2,
            ..rec(None, b"b")
        },
    ];
    let mut b = encode_batch(&BatchSpec::plain(NOW, NONE), &records);
    // A producer that claims a wrong max timestamp: Kafka recomputes it.
    b[35..43].copy_from_slice(&(NOW + 999).to_be_bytes());
    seal(&mut b);
    assert_eq!(validate_batch(&b, &rules()).unwrap().max_timestamp, NOW + 5);
}
