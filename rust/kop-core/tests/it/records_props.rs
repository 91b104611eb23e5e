//! Property tests of the record batch encoder, validator and decoder: generated batches of
//! every codec round-trip through encode -> validate -> decode; an independent decoder (the
//! kafka-protocol crate's) reads the same records; mutated batches never panic, and whatever
//! validation accepts, the decoder can read.

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use kop_core::error::KafkaError;
use kop_core::records::compression::{GZIP, LZ4, NONE, SNAPPY, ZSTD};
use kop_core::records::decode::decode_records;
use kop_core::records::encode::{encode_batch, seal, BatchSpec, NewRecord};
use kop_core::records::validate::{validate_batch, Rules};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000_000;

fn record() -> impl Strategy<Value = NewRecord> {
    let bytes = |max: usize| proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max));
    let name = proptest::collection::vec(b'a'..=b'z', 0..8);
    let header = (name, bytes(16));
    (
        -100_000i64..100_000,
        bytes(24),
        bytes(300),
        proptest::collection::vec(header, 0..3),
    )
        .prop_map(|(timestamp_delta, key, value, headers)| NewRecord {
            timestamp_delta,
            key,
            value,
            headers,
        })
}

fn codec() -> impl Strategy<Value = i16> {
    prop_oneof![Just(NONE), Just(GZIP), Just(SNAPPY), Just(LZ4), Just(ZSTD)]
}

fn rules() -> Rules<'static> {
    Rules::kafka_defaults("props", 0, NOW)
}

/// A batch edit: overwrite a byte, truncate, or insert a byte (then the CRC and length are
/// fixed, so the edit reaches the record checks instead of stopping at the CRC).
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
    ]
}

fn apply(batch: &mut Vec<u8>, e: &Edit) {
    match *e {
        Edit::Set(i, b) => {
            // (an earlier edit may have truncated the batch to nothing)
            if !batch.is_empty() {
                let n = batch.len();
                batch[i % n] = b;
            }
        }
        Edit::Truncate(i) => batch.truncate(i % (batch.len() + 1)),
        Edit::Insert(i, b) => {
            let at = i % (batch.len() + 1);
            batch.insert(at, b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encoded_batches_validate_and_decode_back(
        records in proptest::collection::vec(record(), 1..20),
        codec in codec(),
    ) {
        let batch = encode_batch(&BatchSpec::plain(NOW, codec), &records);
        let v = validate_batch(&batch, &rules()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(v.size, batch.len());
        prop_assert_eq!(v.header.records_count as usize, records.len());
        let max = records.iter().map(|r| NOW + r.timestamp_delta).max().unwrap();
        prop_assert_eq!(v.max_timestamp, max);

        let decoded = decode_records(&batch).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decoded.len(), records.len());
        for (i, (d, r)) in decoded.iter().zip(&records).enumerate() {
            prop_assert_eq!(d.offset, i as i64);
            prop_assert_eq!(d.timestamp, NOW + r.timestamp_delta);
            prop_assert_eq!(&d.key, &r.key);
            prop_assert_eq!(&d.value, &r.value);
            let headers: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                d.headers.iter().map(|(k, v)| (k.clone().into_bytes(), v.clone())).collect();
            prop_assert_eq!(&headers, &r.headers);
        }
    }

    #[test]
    fn an_independent_decoder_reads_the_same_records(
        records in proptest::collection::vec(record(), 1..20),
    ) {
        // kafka-protocol is built without codecs here, so uncompressed batches only.
        let batch = encode_batch(&BatchSpec::plain(NOW, NONE), &records);
        let mut buf = Bytes::from(batch);
        let sets = RecordBatchDecoder::decode_all(&mut buf)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let theirs: Vec<_> = sets.into_iter().flat_map(|s| s.records).collect();
        prop_assert_eq!(theirs.len(), records.len());
        for (i, (t, r)) in theirs.iter().zip(&records).enumerate() {
            prop_assert_eq!(t.offset, i as i64);
            prop_assert_eq!(t.timestamp, NOW + r.timestamp_delta);
            prop_assert_eq!(t.key.as_deref(), r.key.as_deref());
            prop_assert_eq!(t.value.as_deref(), r.value.as_deref());
            // kafka-protocol keeps headers in a map: one entry per distinct key.
            let distinct: std::collections::HashSet<&Vec<u8>> = r.headers.iter().map(|(k, _)| k).collect();
            prop_assert_eq!(t.headers.len(), distinct.len());
        }
    }

    #[test]
    fn edited_batches_never_panic_and_what_passes_decodes(
        records in proptest::collection::vec(record(), 1..8),
        codec in codec(),
        edits in proptest::collection::vec(edit(), 1..4),
        reseal in any::<bool>(),
    ) {
        let mut batch = encode_batch(&BatchSpec::plain(NOW, codec), &records);
        for e in &edits {
            apply(&mut batch, e);
        }
        if reseal && batch.len() >= 61 {
            seal(&mut batch);
        }
        match validate_batch(&batch, &rules()) {
            Ok(v) => {
                let decoded = decode_records(&batch[..v.size]);
                prop_assert!(decoded.is_ok(), "validated but not decodable: {:?}", decoded);
                prop_assert_eq!(decoded.unwrap().len(), v.header.records_count as usize);
            }
            Err(e) => prop_assert!(matches!(
                e.error,
                KafkaError::InvalidRecord
                    | KafkaError::CorruptMessage
                    | KafkaError::InvalidTimestamp
                    | KafkaError::MessageTooLarge
                    | KafkaError::UnknownServerError
            ), "unexpected code {:?}", e),
        }
    }
}
