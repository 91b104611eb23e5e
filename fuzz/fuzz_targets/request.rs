//! Every request body kop decodes: the first byte picks an API from the table kop serves
//! (`handlers::SERVED`), the second a version within its served range, the rest is the body,
//! decoded by `handlers::decode_body` (the dispatcher's own decode calls).
#![no_main]

use bytes::Bytes;
use kafka_protocol::messages::RequestHeader;
use kop_core::handlers::{decode_body, default_body, SERVED};
use libfuzzer_sys::fuzz_target;

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, &(key, min, max)) in SERVED.iter().enumerate() {
        for version in [min, (min + max) / 2, max] {
            let body = default_body(key, version).map_or_else(|_| vec![0; 16], |b| b.to_vec());
            let mut seed = vec![i as u8, (version - min) as u8];
            seed.extend_from_slice(&body);
            out.push(seed);
        }
    }
    // a produce with a real batch in it
    let produce = SERVED
        .iter()
        .position(|(k, _, _)| *k == kafka_protocol::messages::ApiKey::Produce);
    if let Some(i) = produce {
        let (key, min, max) = SERVED[i];
        let records = Bytes::from(kop_fuzz::batch(0, &[(None, Some(b"v"), &[])]));
        let req = kafka_protocol::messages::ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                kafka_protocol::messages::produce_request::TopicProduceData::default()
                    .with_name(kafka_protocol::messages::TopicName(
                        kafka_protocol::protocol::StrBytes::from_static_str("t"),
                    ))
                    .with_partition_data(vec![
                        kafka_protocol::messages::produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records)),
                    ]),
            ]);
        let mut body = bytes::BytesMut::new();
        let version = 9.clamp(min, max);
        if kafka_protocol::protocol::Encodable::encode(&req, &mut body, version).is_ok() {
            let mut seed = vec![i as u8, (version - min) as u8];
            seed.extend_from_slice(&body);
            out.push(seed);
        }
        let _ = key;
    }
    out
}

fuzz_target!(init: kop_fuzz::write_seeds(seeds), |data: &[u8]| {
    let [pick, version, body @ ..] = data else {
        return;
    };
    let (key, min, max) = SERVED[*pick as usize % SERVED.len()];
    let version = min + (i16::from(*version) % (max - min + 1));
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version);
    let _ = decode_body(&header, key, Bytes::copy_from_slice(body));
});
