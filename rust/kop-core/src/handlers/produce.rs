//! Produce: validate each partition's batches and append them, assigning offsets.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;

use super::{authz, produce_txn, sb, Outcome, RequestContext};
use crate::broker::partition::{Durability, Produced};
use crate::broker::Topic;
use crate::codec::frame::encode_response;
use crate::error::KafkaError;
use crate::records::batch::{LOG_OVERHEAD, TRANSACTIONAL};
use crate::records::validate::RecordError;
use kafka_protocol::messages::produce_response::BatchIndexAndErrorMessage;
use std::sync::Arc;
use std::time::Duration;

/// Kafka 4 still advertises Produce v0 (KAFKA-18659) and answers v0–v2 with UNSUPPORTED_VERSION.
pub const ADVERTISED_MIN: i16 = 0;
/// The oldest version the codec decodes; older ones go to `produce_legacy`.
pub const DECODABLE_MIN: i16 = 3;
pub const MAX: i16 = 13;

fn partition_error(index: i32, err: KafkaError) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(err.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(Some(sb(err.to_string())))
}

/// A refused partition. Validation failures are answered as Kafka does: the error code, and
/// for record-level failures the per-record errors and error message (v8+; Kafka's message is
/// null otherwise); the log start offset when the refusal came from Kafka's LogValidator.
fn refused(index: i32, err: RecordError, log_start_offset: i64) -> PartitionProduceResponse {
    let from_validator = matches!(
        err.error,
        KafkaError::InvalidRecord | KafkaError::InvalidTimestamp | KafkaError::UnknownServerError
    );
    let record_errors = err
        .record_errors
        .into_iter()
        .map(|e| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(e.batch_index)
                .with_batch_index_error_message(Some(sb(e.message)))
        })
        .collect();
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(err.error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(if from_validator { log_start_offset } else { -1 })
        .with_record_errors(record_errors)
        .with_error_message(err.error_message.map(sb))
}

/// Kafka's `RequestUtils.hasTransactionalRecords`: some whole batch of the request has the
/// transactional bit.
fn has_transactional_batch(records: &[Vec<Option<BytesMut>>]) -> bool {
    records.iter().flatten().flatten().any(|r| {
        let mut rest = &r[..];
        while rest.len() >= LOG_OVERHEAD + 11 {
            let len = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
            let size = LOG_OVERHEAD + len.max(0) as usize;
            if len < 14 || size > rest.len() {
                break;
            }
            if i16::from_be_bytes([rest[21], rest[22]]) & TRANSACTIONAL != 0 {
                return true;
            }
            rest = &rest[size..];
        }
        false
    })
}

/// Appends every partition's batches. With acks=0 Kafka sends no response; if anything failed
/// it closes the connection instead, so the producer notices — `Close` says why.
/// `body` is the request body `req` was decoded from (its records are slices of it).
pub async fn handle(
    ctx: &RequestContext,
    header: &RequestHeader,
    mut req: ProduceRequest,
    body: Bytes,
    throttle_ms: i32,
) -> Outcome {
    let version = header.request_api_version;
    let broker = &ctx.broker;
    let acks_error = (!matches!(req.acks, -1..=1)).then_some(KafkaError::InvalidRequiredAcks);
    let transactional_id = req.transactional_id.take();
    let records = take_records(body, &mut req);
    // Kafka refuses the whole request when a batch is transactional and the request names no
    // transactional id, or when the principal may not WRITE the transactional id it names
    // (TRANSACTIONAL_ID_AUTHORIZATION_FAILED on every partition).
    let txn_error = match &transactional_id {
        None => has_transactional_batch(&records),
        Some(id) => {
            !authz::allowed(
                ctx,
                "Produce",
                authz::Operation::Write,
                authz::ResourceType::TransactionalId,
                id.as_str(),
            )
            .await
        }
    }
    .then_some(KafkaError::TransactionalIdAuthorizationFailed);
    let mut records = records.into_iter();
    let now = crate::now_ms();
    let sync = broker.sync_on_append();
    // Topic names are collected only when an authorizer must be asked (the hot path under
    // allow-all skips the allocations).
    let denied = if authz::allow_all(ctx) {
        Default::default()
    } else {
        let names: Vec<String> = req
            .topic_data
            .iter()
            .filter_map(|t| {
                if version >= 13 {
                    broker.topic_by_id(&t.topic_id).map(|t| t.name.clone())
                } else {
                    Some(t.name.to_string())
                }
            })
            .collect();
        authz::denied(
            ctx,
            "Produce",
            authz::Operation::Write,
            authz::ResourceType::Topic,
            names.iter().map(String::as_str),
        )
        .await
    };
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // Appends a remote backend has yet to acknowledge: (topic index, partition index, wait).
    let mut pending: Vec<(usize, usize, Durability)> = Vec::new();
    for (topic_data, records) in req.topic_data.into_iter().zip(&mut records) {
        let (topic, missing): (Option<Arc<Topic>>, KafkaError) = if version >= 13 {
            (
                broker.topic_by_id(&topic_data.topic_id),
                KafkaError::UnknownTopicId,
            )
        } else {
            (
                broker.topic(&topic_data.name),
                KafkaError::UnknownTopicOrPartition,
            )
        };
        let unauthorized = topic
            .as_ref()
            .map_or(
                version < 13 && denied.contains(topic_data.name.as_str()),
                |t| denied.contains(&t.name),
            )
            .then_some(KafkaError::TopicAuthorizationFailed);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for (pd, records) in topic_data.partition_data.into_iter().zip(records) {
            let mut log_start_offset = -1;
            let result = match (acks_error.or(txn_error).or(unauthorized), &topic) {
                (Some(e), _) => Err(e.into()),
                (None, None) => Err(missing.into()),
                (None, Some(t)) => match (t.partition(pd.index), records) {
                    (None, _) => Err(KafkaError::UnknownTopicOrPartition.into()),
                    (Some(_), None) => Err(KafkaError::InvalidRecord.into()),
                    (Some(p), Some(records)) => {
                        // Only requests naming a transactional id are verified (the hot path
                        // of other producers is untouched).
                        let verified = match &transactional_id {
                            Some(id) => {
                                produce_txn::verify(ctx, id, &t.name, &p, &records, version).await
                            }
                            None => Ok(None),
                        };
                        let produced = Produced {
                            topic: &t.name,
                            now_ms: now,
                            sync,
                            zstd_allowed: version >= 7,
                            txn_verified: verified.as_ref().ok().copied().flatten(),
                        };
                        let traffic = (records.len(), crate::metrics::topics::records_in(&records));
                        let appended = verified.and_then(|_| {
                            p.append(records, &produced).map_err(|e| match e.error {
                                KafkaError::ConcurrentTransactions => {
                                    produce_txn::refusal(e.error, version)
                                }
                                _ => e,
                            })
                        });
                        match &appended {
                            Ok(_) => t.traffic.produced(traffic.0, traffic.1),
                            Err(_) => log_start_offset = p.log_start_offset(),
                        }
                        appended
                    }
                },
            };
            partitions.push(match result {
                Ok((done, durability)) => {
                    if let Some(d) = durability {
                        pending.push((responses.len(), partitions.len(), d));
                    }
                    PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_base_offset(done.base_offset)
                        .with_log_append_time_ms(done.log_append_time)
                        .with_log_start_offset(done.log_start_offset)
                }
                Err(e) => {
                    tracing::debug!(topic = %topic_data.name.0, partition = pd.index, error = %e, "produce rejected");
                    let answer = refused(pd.index, e, log_start_offset);
                    broker.metrics.requests.error(ApiKey::Produce as i16, answer.error_code);
                    answer
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partitions),
        );
    }
    // acks=0 never waits. Otherwise every partition's append must be stored before the answer:
    // the appends are done, so the wait is handed back as `Later` and the connection reads the
    // next request meanwhile (pipelining; responses still go out in request order). The
    // request's timeout counts from now, not from when the connection gets to await it.
    if req.acks != 0 && !pending.is_empty() {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(1) as u64);
        let correlation_id = header.correlation_id;
        return Outcome::Later(Box::pin(async move {
            let (slots, waits): (Vec<_>, Vec<_>) = pending
                .into_iter()
                .map(|(t, p, d)| ((t, p), d.wait()))
                .unzip();
            let outcomes =
                tokio::time::timeout_at(deadline, futures::future::join_all(waits)).await;
            for (i, (t, p)) in slots.into_iter().enumerate() {
                let failed = match &outcomes {
                    Ok(results) => results[i].err(),
                    Err(_) => Some(KafkaError::RequestTimedOut),
                };
                if let Some(e) = failed {
                    let part = &mut responses[t].partition_responses[p];
                    *part = partition_error(part.index, e);
                }
            }
            respond(version, correlation_id, responses, throttle_ms)
        }));
    }
    if req.acks != 0 {
        return respond(version, header.correlation_id, responses, throttle_ms);
    }
    let failed = responses
        .iter()
        .flat_map(|t| t.partition_responses.iter())
        .find(|p| p.error_code != 0);
    match failed {
        Some(p) => Outcome::Close(format!("acks=0 produce failed with error {}", p.error_code)),
        None => Outcome::NoResponse,
    }
}

/// Takes every partition's records out of the request as a buffer of its own, to be patched in
/// place and stored (`Partition::append`). The records are slices of the request body: once
/// nothing else refers to it (topic names are copied out, tagged fields dropped) the body is
/// reclaimed as one mutable buffer and split at the records' bounds, without copying a byte.
/// If something still shares it, each partition's records are copied instead.
fn take_records(body: Bytes, req: &mut ProduceRequest) -> Vec<Vec<Option<BytesMut>>> {
    let base = body.as_ptr() as usize;
    let within = |r: &Bytes| {
        let start = (r.as_ptr() as usize).wrapping_sub(base);
        (start <= body.len() && r.len() <= body.len() - start).then_some(start..start + r.len())
    };
    // Per partition: the records' range in `body`, or records from elsewhere.
    type Found = Option<Result<std::ops::Range<usize>, Bytes>>;
    let mut found: Vec<Vec<Found>> = Vec::with_capacity(req.topic_data.len());
    req.unknown_tagged_fields.clear();
    for t in &mut req.topic_data {
        t.name = TopicName(sb(t.name.0.as_str()));
        t.unknown_tagged_fields.clear();
        found.push(
            t.partition_data
                .iter_mut()
                .map(|pd| {
                    pd.unknown_tagged_fields.clear();
                    pd.records.take().map(|r| within(&r).ok_or(r))
                })
                .collect(),
        );
    }
    // Ranges come in wire order; reclaiming needs them ascending and disjoint.
    let mut last = 0;
    let ascending = found.iter().flatten().flatten().all(|r| match r {
        Ok(range) if range.start >= last => {
            last = range.end;
            true
        }
        Ok(_) => false,
        Err(_) => true,
    });
    let mut whole = match ascending {
        true => body.try_into_mut(),
        false => Err(body),
    };
    let mut pos = 0;
    found
        .into_iter()
        .map(|parts| {
            parts
                .into_iter()
                .map(|r| {
                    Some(match (r?, &mut whole) {
                        (Ok(range), Ok(buf)) => {
                            buf.advance(range.start - pos);
                            pos = range.end;
                            buf.split_to(range.len())
                        }
                        (Ok(range), Err(body)) => BytesMut::from(&body[range]),
                        (Err(other), _) => BytesMut::from(&other[..]),
                    })
                })
                .collect()
        })
        .collect()
}

/// `throttle_ms`: the quota throttle the request earned (`quotas/`).
fn respond(
    version: i16,
    correlation_id: i32,
    responses: Vec<TopicProduceResponse>,
    throttle_ms: i32,
) -> Outcome {
    let resp = ProduceResponse::default()
        .with_responses(responses)
        .with_throttle_time_ms(throttle_ms);
    match encode_response(ApiKey::Produce, version, correlation_id, &resp) {
        Ok(bytes) => Outcome::Respond(bytes),
        Err(e) => Outcome::Close(format!("Produce v{version}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn request(topics: &[(&str, &[&[u8]])]) -> ProduceRequest {
        ProduceRequest::default().with_acks(1).with_topic_data(
            topics
                .iter()
                .map(|(name, parts)| {
                    TopicProduceData::default()
                        .with_name(TopicName(sb(*name)))
                        .with_partition_data(
                            parts
                                .iter()
                                .enumerate()
                                .map(|(i, r)| {
                                    PartitionProduceData::default()
                                        .with_index(i as i32)
                                        .with_records(Some(Bytes::copy_from_slice(r)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    fn decoded(req: &ProduceRequest, version: i16) -> (ProduceRequest, Bytes) {
        let mut buf = BytesMut::new();
        req.encode(&mut buf, version).unwrap();
        let body = buf.freeze();
        let whole = body.clone();
        let mut cursor = body;
        let req = ProduceRequest::decode(&mut cursor, version).unwrap();
        (req, whole)
    }

    #[test]
    fn records_are_taken_out_of_the_request_without_a_copy() {
        let sent = request(&[("a", &[b"one", b"two"]), ("bb", &[b"three"])]);
        for version in [3, 9, 12] {
            let (mut req, body) = decoded(&sent, version);
            let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
            let taken = take_records(body, &mut req);
            let flat: Vec<&BytesMut> = taken.iter().flatten().flatten().collect();
            let values: Vec<&[u8]> = flat.iter().map(|b| &b[..]).collect();
            assert_eq!(values, vec![&b"one"[..], b"two", b"three"]);
            // Each buffer is a piece of the request body itself (no copy was made).
            for b in flat {
                assert!(range.contains(&(b.as_ptr() as usize)), "v{version}: copied");
            }
            assert_eq!(req.topic_data[1].name.0.as_str(), "bb");
            assert!(req.topic_data[0].partition_data[0].records.is_none());
        }
    }

    #[test]
    fn records_are_copied_when_the_body_is_shared() {
        let (mut req, body) = decoded(&request(&[("a", &[b"one"])]), 9);
        let extra = body.clone();
        let taken = take_records(body, &mut req);
        let b = taken[0][0].as_ref().unwrap();
        assert_eq!(&b[..], b"one");
        let range = extra.as_ptr() as usize..extra.as_ptr() as usize + extra.len();
        assert!(!range.contains(&(b.as_ptr() as usize)));
    }
}
