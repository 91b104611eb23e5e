//! A tiny blocking Kafka client over the `kafka-protocol` crate, for in-process tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kop_core::{RunningServer, ServerConfig};

pub struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client {
            stream,
            correlation: 0,
        }
    }

    pub fn send_raw(&mut self, frame: &[u8]) {
        self.stream.write_all(frame).unwrap();
    }

    /// Reads one response frame; None if the server closed the connection.
    pub fn read_raw(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut buf).ok()?;
        Some(Bytes::from(buf))
    }

    pub fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        let sent = self.send(req, version);
        let (correlation, resp) = self.recv::<R>(version);
        assert_eq!(correlation, sent);
        resp
    }
}

pub fn start(storage: &str, extra: &str) -> RunningServer {
    let json = format!(
        r#"{{"listeners": ["PLAINTEXT://127.0.0.1:0"], "storage": "{storage}", "io_threads": 2 {extra}}}"#
    );
    RunningServer::start(ServerConfig::from_json(&json).unwrap()).unwrap()
}

pub fn port(server: &RunningServer) -> u16 {
    server.listeners()[0].port
}

pub fn records(values: &[&[u8]], base_ts: i64, producer: (i64, i16, i32)) -> Bytes {
    let recs: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence must be constant for the encoder to keep one batch
            sequence: producer.2 + i as i32,
            timestamp: base_ts + i as i64,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, recs.iter(), &opts).unwrap();
    buf.freeze()
}

pub fn decode_values(mut records: Bytes) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut records).unwrap() {
        for r in set.records {
            out.push((r.offset, r.value.unwrap_or_default()));
        }
    }
    out
}

pub fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn produce(
    c: &mut Client,
    topic_name: &str,
    partition: i32,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let resp = c.call(&produce_request(topic_name, partition, -1, records), 9);
    resp.responses[0].partition_responses[0].clone()
}

pub fn fetch(
    c: &mut Client,
    topic_name: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> fetch_response::PartitionData {
    let req = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(10 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic(topic_name))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = c.call(&req, 11);
    resp.responses[0].partitions[0].clone()
}

pub fn create_topic(c: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )]);
    c.call(&req, 7).topics[0].error_code
}

impl Client {
    /// Sends a request without waiting for its response; returns its correlation id.
    pub fn send<R: Request>(&mut self, req: &R, version: i16) -> i32 {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("kop-test")));
        let key = ApiKey::try_from(R::KEY).unwrap();
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.send_raw(&frame);
        self.correlation
    }

    /// Reads the next response frame as the response to an `R` request: (correlation id, body).
    pub fn recv<R: Request>(&mut self, version: i16) -> (i32, R::Response) {
        let key = ApiKey::try_from(R::KEY).unwrap();
        let mut resp = self.read_raw().expect("response");
        let rh = ResponseHeader::decode(&mut resp, key.response_header_version(version)).unwrap();
        (
            rh.correlation_id,
            R::Response::decode(&mut resp, version).unwrap(),
        )
    }

    pub fn set_read_timeout(&mut self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
    }
}

/// A Produce request of one partition's records.
pub fn produce_request(
    topic_name: &str,
    partition: i32,
    acks: i16,
    records: Bytes,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic(topic_name))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])])
}
