//! Produce v0–v2: advertised (as Kafka 4 does, KAFKA-18659) but answered with
//! UNSUPPORTED_VERSION for every partition. The codec no longer knows these versions, so the
//! little that is needed is read and written by hand here.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::RequestHeader;

use super::Outcome;
use crate::error::KafkaError;

fn read_string(buf: &mut Bytes) -> Option<Bytes> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    let len = usize::try_from(len).ok()?;
    (buf.remaining() >= len).then(|| buf.split_to(len))
}

/// A topic name and the partition indexes asked for it.
type TopicPartitions = (Bytes, Vec<i32>);

/// acks, and the topics and partitions of a v0–v2 request.
fn parse(mut body: Bytes) -> Option<(i16, Vec<TopicPartitions>)> {
    if body.remaining() < 10 {
        return None;
    }
    let acks = body.get_i16();
    let _timeout = body.get_i32();
    let topic_count = body.get_i32();
    let mut topics = Vec::new();
    for _ in 0..topic_count.max(0) {
        let name = read_string(&mut body)?;
        if body.remaining() < 4 {
            return None;
        }
        let partition_count = body.get_i32();
        let mut partitions = Vec::new();
        for _ in 0..partition_count.max(0) {
            if body.remaining() < 8 {
                return None;
            }
            partitions.push(body.get_i32());
            let size = body.get_i32();
            if size > 0 {
                let size = size as usize;
                if body.remaining() < size {
                    return None;
                }
                body.advance(size);
            }
        }
        topics.push((name, partitions));
    }
    Some((acks, topics))
}

pub fn handle(header: &RequestHeader, body: Bytes) -> Outcome {
    let version = header.request_api_version;
    let Some((acks, topics)) = parse(body) else {
        return Outcome::Close(format!("malformed Produce v{version} request"));
    };
    if acks == 0 {
        return Outcome::NoResponse;
    }
    let mut out = BytesMut::new();
    out.put_i32(0); // frame size, patched below
    out.put_i32(header.correlation_id);
    out.put_i32(topics.len() as i32);
    for (name, partitions) in topics {
        out.put_i16(name.len() as i16);
        out.extend_from_slice(&name);
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(p);
            out.put_i16(KafkaError::UnsupportedVersion.code());
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle_time_ms
    }
    let size = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&size.to_be_bytes());
    Outcome::Respond(out.freeze())
}
