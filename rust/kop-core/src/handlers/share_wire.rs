//! ShareFetch (API 78) and ShareAcknowledge (API 79) v2 by hand: the `kafka-protocol` crate
//! (0.18, its latest) stops at v1. Kafka 4.4's schemas (`ShareFetchRequest.json` and friends in
//! kafka-clients 4.4.0): v2 of ShareFetch adds `ShareAcquireMode` (int8, KIP-1206) and
//! `IsRenewAck` (bool, KIP-1222) after `BatchSize`; v2 of ShareAcknowledge adds `IsRenewAck`
//! after `ShareSessionEpoch`, and its response `AcquisitionLockTimeoutMs` after `ErrorMessage`.
//! ShareFetch's response is the same at v1 and v2 (the crate encodes it). Requests decode into
//! the crate's v1 structs plus the new fields, so one handler serves every version.
//!
//! DescribeShareGroupOffsets (API 90) v1 too: the crate knows v0 only. v1 (KIP-1226) has the
//! same request and adds `Lag` (int64, ignorable, default -1) after `LeaderEpoch` in each
//! response partition (`DescribeShareGroupOffsets*.json` in kafka-clients 4.4.0).

use bytes::Bytes;
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::share_acknowledge_request::{
    self as sa, AcknowledgePartition, AcknowledgeTopic,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic,
};
use kafka_protocol::messages::{
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, GroupId,
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::streams_wire::{Malformed, Reader, Writer};

pub const FETCH_KEY: i16 = 78;
pub const ACKNOWLEDGE_KEY: i16 = 79;
/// The version served by hand (v1 is the crate's).
pub const VERSION: i16 = 2;

pub const DESCRIBE_OFFSETS_KEY: i16 = 90;
/// DescribeShareGroupOffsets' version served by hand (v0 is the crate's).
pub const DESCRIBE_OFFSETS_VERSION: i16 = 1;

/// The versions served by hand above the crate's: ShareFetch and ShareAcknowledge v2,
/// DescribeShareGroupOffsets v1.
pub const SERVED_ABOVE_CODEC: [(i16, i16); 3] = [
    (FETCH_KEY, VERSION),
    (ACKNOWLEDGE_KEY, VERSION),
    (DESCRIBE_OFFSETS_KEY, DESCRIBE_OFFSETS_VERSION),
];

/// Whether a request is one this file decodes.
pub fn is_hand_written(key: i16, version: i16) -> bool {
    SERVED_ABOVE_CODEC.contains(&(key, version))
}

/// KIP-1206 `ShareAcquireMode`: how `MaxRecords` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcquireMode {
    /// 0, and all of v1: whole record batches, `MaxRecords` may be exceeded to finish one.
    #[default]
    BatchOptimized,
    /// 1: `MaxRecords` records at most, a batch split if need be.
    RecordLimit,
}

/// A ShareFetch at any version: the crate's struct and v2's fields (v1: their defaults).
#[derive(Debug, Clone, Default)]
pub struct ShareFetch {
    pub req: ShareFetchRequest,
    pub acquire_mode: AcquireMode,
    /// The acknowledgement batches may carry RENEW (4, a type of v2 only); the request
    /// fetches nothing.
    pub is_renew_ack: bool,
}

/// A ShareAcknowledge at any version.
#[derive(Debug, Clone, Default)]
pub struct ShareAcknowledge {
    pub req: ShareAcknowledgeRequest,
    pub is_renew_ack: bool,
}

fn uuid(r: &mut Reader) -> Result<Uuid, Malformed> {
    let hi = r.i64()? as u64;
    let lo = r.i64()? as u64;
    Ok(Uuid::from_u64_pair(hi, lo))
}

fn str_bytes(s: Option<String>) -> Option<StrBytes> {
    s.map(StrBytes::from_string)
}

/// AcknowledgementBatches (the same fields in both requests).
fn ack_batches(r: &mut Reader) -> Result<Vec<(i64, i64, Vec<i8>)>, Malformed> {
    r.array(|r| {
        let b = (r.i64()?, r.i64()?, r.array(Reader::i8)?);
        r.tagged()?;
        Ok(b)
    })
}

fn acquire_mode(v: i8) -> Result<AcquireMode, Malformed> {
    match v {
        0 => Ok(AcquireMode::BatchOptimized),
        1 => Ok(AcquireMode::RecordLimit),
        _ => Err(Malformed("share acquire mode")),
    }
}

impl ShareFetch {
    /// From a request the crate decoded (v1).
    pub fn v1(req: ShareFetchRequest) -> ShareFetch {
        ShareFetch {
            req,
            ..ShareFetch::default()
        }
    }

    /// Decodes a v2 body.
    pub fn decode(body: Bytes) -> Result<ShareFetch, Malformed> {
        let r = &mut Reader::new(body);
        let mut req = ShareFetchRequest::default()
            .with_group_id(
                r.nullable_string()?
                    .map(|g| GroupId(StrBytes::from_string(g))),
            )
            .with_member_id(str_bytes(r.nullable_string()?))
            .with_share_session_epoch(r.i32()?)
            .with_max_wait_ms(r.i32()?)
            .with_min_bytes(r.i32()?)
            .with_max_bytes(r.i32()?)
            .with_max_records(r.i32()?)
            .with_batch_size(r.i32()?);
        let acquire_mode = acquire_mode(r.i8()?)?;
        let is_renew_ack = r.bool()?;
        req.topics = r.array(|r| {
            let topic_id = uuid(r)?;
            let partitions = r.array(|r| {
                let index = r.i32()?;
                let batches = ack_batches(r)?;
                r.tagged()?;
                Ok(FetchPartition::default()
                    .with_partition_index(index)
                    .with_acknowledgement_batches(
                        batches
                            .into_iter()
                            .map(|(first, last, types)| {
                                AcknowledgementBatch::default()
                                    .with_first_offset(first)
                                    .with_last_offset(last)
                                    .with_acknowledge_types(types)
                            })
                            .collect(),
                    ))
            })?;
            r.tagged()?;
            Ok(FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions))
        })?;
        req.forgotten_topics_data = r.array(|r| {
            let topic_id = uuid(r)?;
            let partitions = r.array(Reader::i32)?;
            r.tagged()?;
            Ok(ForgottenTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions))
        })?;
        r.tagged()?;
        Ok(ShareFetch {
            req,
            acquire_mode,
            is_renew_ack,
        })
    }
}

impl ShareAcknowledge {
    pub fn v1(req: ShareAcknowledgeRequest) -> ShareAcknowledge {
        ShareAcknowledge {
            req,
            is_renew_ack: false,
        }
    }

    /// Decodes a v2 body.
    pub fn decode(body: Bytes) -> Result<ShareAcknowledge, Malformed> {
        let r = &mut Reader::new(body);
        let mut req = ShareAcknowledgeRequest::default()
            .with_group_id(
                r.nullable_string()?
                    .map(|g| GroupId(StrBytes::from_string(g))),
            )
            .with_member_id(str_bytes(r.nullable_string()?))
            .with_share_session_epoch(r.i32()?);
        let is_renew_ack = r.bool()?;
        req.topics = r.array(|r| {
            let topic_id = uuid(r)?;
            let partitions = r.array(|r| {
                let index = r.i32()?;
                let batches = ack_batches(r)?;
                r.tagged()?;
                Ok(AcknowledgePartition::default()
                    .with_partition_index(index)
                    .with_acknowledgement_batches(
                        batches
                            .into_iter()
                            .map(|(first, last, types)| {
                                sa::AcknowledgementBatch::default()
                                    .with_first_offset(first)
                                    .with_last_offset(last)
                                    .with_acknowledge_types(types)
                            })
                            .collect(),
                    ))
            })?;
            r.tagged()?;
            Ok(AcknowledgeTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions))
        })?;
        r.tagged()?;
        Ok(ShareAcknowledge { req, is_renew_ack })
    }
}

fn write_uuid(w: &mut Writer, id: &Uuid) {
    let (hi, lo) = id.as_u64_pair();
    w.i64(hi as i64);
    w.i64(lo as i64);
}

/// A ShareAcknowledgeResponse v2 body: v1's fields with `AcquisitionLockTimeoutMs` after the
/// error message.
pub fn acknowledge_response(resp: &ShareAcknowledgeResponse, lock_ms: i32) -> Writer {
    let mut w = Writer::default();
    w.i32(resp.throttle_time_ms);
    w.i16(resp.error_code);
    w.nullable_string(resp.error_message.as_deref());
    w.i32(lock_ms);
    w.array(&resp.responses, |w, t| {
        write_uuid(w, &t.topic_id);
        w.array(&t.partitions, |w, p| {
            w.i32(p.partition_index);
            w.i16(p.error_code);
            w.nullable_string(p.error_message.as_deref());
            w.i32(p.current_leader.leader_id);
            w.i32(p.current_leader.leader_epoch);
            w.tagged();
            w.tagged();
        });
        w.tagged();
    });
    w.array(&resp.node_endpoints, |w, n| {
        w.i32(n.node_id.0);
        w.string(&n.host);
        w.i32(n.port);
        w.nullable_string(n.rack.as_deref());
        w.tagged();
    });
    w.tagged();
    w
}

/// Decodes a DescribeShareGroupOffsets request body (v0 and v1 are the same).
pub fn describe_offsets_request(
    body: Bytes,
) -> Result<DescribeShareGroupOffsetsRequest, Malformed> {
    let r = &mut Reader::new(body);
    let groups = r.array(|r| {
        let group_id = GroupId(StrBytes::from_string(r.string()?));
        let topics = r.nullable_array(|r| {
            let name = TopicName(StrBytes::from_string(r.string()?));
            let partitions = r.array(Reader::i32)?;
            r.tagged()?;
            Ok(DescribeShareGroupOffsetsRequestTopic::default()
                .with_topic_name(name)
                .with_partitions(partitions))
        })?;
        r.tagged()?;
        Ok(DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(group_id)
            .with_topics(topics))
    })?;
    r.tagged()?;
    Ok(DescribeShareGroupOffsetsRequest::default().with_groups(groups))
}

/// A DescribeShareGroupOffsetsResponse v1 body: v0's fields with each partition's `Lag` after
/// its leader epoch. `lags` holds the partitions' lags in the response's order (groups, then
/// topics, then partitions); a partition without one is -1, the field's default.
pub fn describe_offsets_response(resp: &DescribeShareGroupOffsetsResponse, lags: &[i64]) -> Writer {
    let mut lags = lags.iter().copied();
    let mut w = Writer::default();
    w.i32(resp.throttle_time_ms);
    w.array(&resp.groups, |w, g| {
        w.string(&g.group_id);
        w.array(&g.topics, |w, t| {
            w.string(&t.topic_name);
            write_uuid(w, &t.topic_id);
            w.array(&t.partitions, |w, p| {
                w.i32(p.partition_index);
                w.i64(p.start_offset);
                w.i32(p.leader_epoch);
                w.i64(lags.next().unwrap_or(-1));
                w.i16(p.error_code);
                w.nullable_string(p.error_message.as_deref());
                w.tagged();
            });
            w.tagged();
        });
        w.i16(g.error_code);
        w.nullable_string(g.error_message.as_deref());
        w.tagged();
    });
    w.tagged();
    w
}

/// Decodes a body of a request served by hand, as `dispatch` does, for the fuzz target
/// `share_wire` (`fuzz/`): Ok or Malformed, never a panic.
#[cfg(feature = "fuzzing")]
pub fn decode_for_fuzzing(key: i16, body: Bytes) -> Result<(), Malformed> {
    match key {
        FETCH_KEY => ShareFetch::decode(body).map(drop),
        DESCRIBE_OFFSETS_KEY => describe_offsets_request(body).map(drop),
        _ => ShareAcknowledge::decode(body).map(drop),
    }
}

/// Seeds for the fuzz target: a v2 ShareFetch and a v2 ShareAcknowledge with renewals, a
/// DescribeShareGroupOffsets.
#[cfg(any(test, feature = "fuzzing"))]
pub fn sample_bodies() -> Vec<(i16, Bytes)> {
    vec![
        (FETCH_KEY, sample::fetch_body()),
        (ACKNOWLEDGE_KEY, sample::acknowledge_body()),
        (DESCRIBE_OFFSETS_KEY, sample::describe_offsets_body()),
    ]
}

#[cfg(any(test, feature = "fuzzing"))]
mod sample {
    use super::*;

    pub const TOPIC: Uuid = Uuid::from_u64_pair(0x0102_0304_0506_0708, 0x090a_0b0c_0d0e_0f10);

    fn ack_batch(w: &mut Writer, first: i64, last: i64, types: &[i8]) {
        w.i64(first);
        w.i64(last);
        w.array(types, |w, t| w.i8(*t));
        w.tagged();
    }

    /// A record-limit ShareFetch of partition 0 that renews offset 5 and accepts 6–7, and
    /// forgets partition 3.
    pub fn fetch_body() -> Bytes {
        let mut w = Writer::default();
        w.nullable_string(Some("g"));
        w.nullable_string(Some("member-1"));
        w.i32(3);
        w.i32(500);
        w.i32(1);
        w.i32(1 << 20);
        w.i32(7);
        w.i32(7);
        w.i8(1);
        w.bool(true);
        w.array(&[0], |w, _| {
            write_uuid(w, &TOPIC);
            w.array(&[0], |w, _| {
                w.i32(0);
                w.array(&[0], |w, _| ack_batch(w, 5, 7, &[4, 1, 1]));
                w.tagged();
            });
            w.tagged();
        });
        w.array(&[0], |w, _| {
            write_uuid(w, &TOPIC);
            w.array(&[3], |w, p| w.i32(*p));
            w.tagged();
        });
        w.tagged();
        w.0.freeze()
    }

    /// A DescribeShareGroupOffsets of partitions 0 and 2 of "t" for "g", and of every
    /// partition for "h" (null topics), encoded by the crate (v0: the same as v1).
    pub fn describe_offsets_body() -> Bytes {
        use kafka_protocol::protocol::Encodable;
        let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(Some(vec![DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![0, 2])])),
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("h")))
                .with_topics(None),
        ]);
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 0).expect("encodes");
        buf.freeze()
    }

    /// A ShareAcknowledge that renews offsets 10–11 of partition 2.
    pub fn acknowledge_body() -> Bytes {
        let mut w = Writer::default();
        w.nullable_string(Some("g"));
        w.nullable_string(Some("member-1"));
        w.i32(4);
        w.bool(true);
        w.array(&[0], |w, _| {
            write_uuid(w, &TOPIC);
            w.array(&[2], |w, p| {
                w.i32(*p);
                w.array(&[0], |w, _| ack_batch(w, 10, 11, &[4]));
                w.tagged();
            });
            w.tagged();
        });
        w.tagged();
        w.0.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::share_acknowledge_response::{
        LeaderIdAndEpoch, PartitionData, ShareAcknowledgeTopicResponse,
    };
    use kafka_protocol::protocol::{Decodable, Encodable};

    #[test]
    fn a_v2_share_fetch_decodes_with_its_mode_and_renew_flag() {
        let f = ShareFetch::decode(sample::fetch_body()).unwrap();
        assert_eq!(f.acquire_mode, AcquireMode::RecordLimit);
        assert!(f.is_renew_ack);
        assert_eq!(f.req.group_id.as_ref().map(|g| g.as_str()), Some("g"));
        assert_eq!(f.req.member_id.as_deref(), Some("member-1"));
        assert_eq!(
            (
                f.req.share_session_epoch,
                f.req.max_wait_ms,
                f.req.max_records
            ),
            (3, 500, 7)
        );
        let p = &f.req.topics[0].partitions[0];
        assert_eq!(f.req.topics[0].topic_id, sample::TOPIC);
        assert_eq!(
            p.acknowledgement_batches[0].acknowledge_types,
            vec![4, 1, 1]
        );
        assert_eq!(f.req.forgotten_topics_data[0].partitions, vec![3]);
    }

    /// v2 is v1 with two fields after BatchSize: cut them out and the crate's v1 decoder reads
    /// the same request.
    #[test]
    fn a_v2_share_fetch_is_v1_plus_two_fields() {
        let body = sample::fetch_body();
        // group "g" (2), member (9), six int32s (24): the mode and the flag follow.
        let at = 2 + 9 + 24;
        let mut v1 = BytesMut::from(&body[..at]);
        v1.extend_from_slice(&body[at + 2..]);
        let crate_v1 = ShareFetchRequest::decode(&mut v1.freeze(), 1).unwrap();
        assert_eq!(ShareFetch::decode(body).unwrap().req, crate_v1);
    }

    #[test]
    fn a_v2_share_acknowledge_decodes() {
        let a = ShareAcknowledge::decode(sample::acknowledge_body()).unwrap();
        assert!(a.is_renew_ack);
        assert_eq!(a.req.share_session_epoch, 4);
        let p = &a.req.topics[0].partitions[0];
        assert_eq!(p.partition_index, 2);
        assert_eq!(
            (
                p.acknowledgement_batches[0].first_offset,
                p.acknowledgement_batches[0].last_offset
            ),
            (10, 11)
        );
    }

    /// The v2 response is the crate's v1 encoding with the lock timeout after the error
    /// message.
    #[test]
    fn the_v2_acknowledge_response_is_v1_plus_the_lock_timeout() {
        let resp = ShareAcknowledgeResponse::default()
            .with_error_message(Some(StrBytes::from_static_str("m")))
            .with_responses(vec![ShareAcknowledgeTopicResponse::default()
                .with_topic_id(sample::TOPIC)
                .with_partitions(vec![PartitionData::default()
                    .with_partition_index(2)
                    .with_error_code(121)
                    .with_current_leader(
                        LeaderIdAndEpoch::default()
                            .with_leader_id(1)
                            .with_leader_epoch(0),
                    )])]);
        let mut v1 = BytesMut::new();
        resp.encode(&mut v1, 1).unwrap();
        let v2 = acknowledge_response(&resp, 30_000).0;
        let at = 4 + 2 + 2; // throttle, error, "m"
        assert_eq!(&v2[..at], &v1[..at]);
        assert_eq!(&v2[at..at + 4], &30_000i32.to_be_bytes());
        assert_eq!(&v2[at + 4..], &v1[at..]);
    }

    #[test]
    fn cut_and_corrupted_bodies_never_panic() {
        for (key, body) in sample_bodies() {
            for end in 0..body.len() {
                let cut = body.slice(..end);
                let failed = match key {
                    FETCH_KEY => ShareFetch::decode(cut).is_err(),
                    DESCRIBE_OFFSETS_KEY => describe_offsets_request(cut).is_err(),
                    _ => ShareAcknowledge::decode(cut).is_err(),
                };
                assert!(failed, "prefix {end} of {key}");
            }
            for bytes in crate::handlers::streams_wire::corrupted_copies(&body, 10_000) {
                let _ = ShareFetch::decode(bytes.clone());
                let _ = describe_offsets_request(bytes.clone());
                let _ = ShareAcknowledge::decode(bytes);
            }
        }
    }

    /// The request is the same at v0 and v1: what the crate encodes at v0 decodes by hand to
    /// the same request, and the crate reads it back from v0 bytes.
    #[test]
    fn a_describe_offsets_request_round_trips_through_both_decoders() {
        let body = sample::describe_offsets_body();
        let by_hand = describe_offsets_request(body.clone()).unwrap();
        let by_crate = DescribeShareGroupOffsetsRequest::decode(&mut body.clone(), 0).unwrap();
        assert_eq!(by_hand, by_crate);
        assert_eq!(
            by_hand.groups[0].topics.as_ref().unwrap()[0].partitions,
            vec![0, 2]
        );
        assert!(by_hand.groups[1].topics.is_none(), "null: every partition");
    }

    fn offsets_response() -> DescribeShareGroupOffsetsResponse {
        use kafka_protocol::messages::describe_share_group_offsets_response::{
            DescribeShareGroupOffsetsResponseGroup as G,
            DescribeShareGroupOffsetsResponsePartition as P,
            DescribeShareGroupOffsetsResponseTopic as T,
        };
        DescribeShareGroupOffsetsResponse::default()
            .with_throttle_time_ms(5)
            .with_groups(vec![
                G::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("g")))
                    .with_topics(vec![T::default()
                        .with_topic_name(TopicName(StrBytes::from_static_str("t")))
                        .with_topic_id(sample::TOPIC)
                        .with_partitions(vec![
                            P::default()
                                .with_partition_index(0)
                                .with_start_offset(7)
                                .with_leader_epoch(3),
                            P::default()
                                .with_partition_index(2)
                                .with_start_offset(-1)
                                .with_error_code(3)
                                .with_error_message(Some(StrBytes::from_static_str("x"))),
                        ])]),
                G::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("h")))
                    .with_error_code(16),
            ])
    }

    /// (index, start offset, leader epoch, lag, error code) of a response partition.
    type Row = (i32, i64, i32, i64, i16);

    /// Reads a v1 response back: each partition's row.
    fn read_v1(body: Bytes) -> Result<Vec<Row>, Malformed> {
        let r = &mut Reader::new(body);
        let mut out = Vec::new();
        r.i32()?;
        r.array(|r| {
            r.string()?;
            r.array(|r| {
                r.string()?;
                uuid(r)?;
                r.array(|r| {
                    out.push((r.i32()?, r.i64()?, r.i32()?, r.i64()?, r.i16()?));
                    r.nullable_string()?;
                    r.tagged()
                })?;
                r.tagged()
            })?;
            r.i16()?;
            r.nullable_string()?;
            r.tagged()
        })?;
        r.tagged()?;
        Ok(out)
    }

    /// v1 is the crate's v0 with eight bytes of lag after each partition's leader epoch; a
    /// partition without a lag gets -1.
    #[test]
    fn the_v1_offsets_response_is_v0_plus_each_partitions_lag() {
        let resp = offsets_response();
        let mut v0 = BytesMut::new();
        resp.encode(&mut v0, 0).unwrap();
        let v1 = describe_offsets_response(&resp, &[42]).0.freeze();
        assert_eq!(v1.len(), v0.len() + 2 * 8);
        assert_eq!(
            read_v1(v1.clone()).unwrap(),
            vec![(0, 7, 3, 42, 0), (2, -1, 0, -1, 3)]
        );
        // Cut the lags out: the crate's v0 bytes, and the crate's v0 decoder reads them.
        // throttle 4, groups 1, "g" 2, topics 1, "t" 2, id 16, partitions 1; index, start and
        // epoch 16 (v0 positions).
        let first = 4 + 1 + 2 + 1 + 2 + 16 + 1 + 16;
        let second = first + 2 + 1 + 1 + 16; // error, null message, tags; the next partition
        let mut cut = BytesMut::from(&v1[..first]);
        cut.extend_from_slice(&v1[first + 8..second + 8]);
        cut.extend_from_slice(&v1[second + 16..]);
        assert_eq!(&cut[..], &v0[..]);
        let back = DescribeShareGroupOffsetsResponse::decode(&mut cut.freeze(), 0).unwrap();
        assert_eq!(back, resp);
        for end in 0..v1.len() {
            assert!(read_v1(v1.slice(..end)).is_err(), "prefix {end}");
        }
    }
}
