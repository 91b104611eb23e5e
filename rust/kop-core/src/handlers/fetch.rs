//! Fetch: whole stored batches, with min_bytes/max_wait long-polling woken by appends, and
//! incremental fetch sessions (KIP-227, `broker::fetch_sessions`) from Fetch v7.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::select_all;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::*;
use tokio::sync::watch;

use super::{authz, sb, RequestContext};
use crate::broker::fetch_sessions::{PartitionKey, Position, Told, TopicKey};
use crate::broker::partition::{Isolation, LogMark, Partition, ReadResult, StartedRead};
use crate::error::KafkaError;
use crate::records::batch::LOG_OVERHEAD;

/// Cap on one fetch response, whatever the client asks (Kafka's `fetch.max.bytes` default);
/// the first batch is still returned whole if it is larger (KIP-74).
const FETCH_MAX_BYTES: i32 = 57_671_680;

/// The session epochs with a meaning of their own (Kafka's `FetchMetadata`).
const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;

/// What the request's session id and epoch ask for.
enum SessionPlan {
    /// No session: the request lists every partition (Fetch v4-6, or id 0 with epoch -1).
    None,
    /// A full fetch that opens a new session.
    Open,
    /// An incremental fetch of session `id`.
    Incremental(i32),
}

/// One partition a fetch reads.
struct Wanted {
    key: PartitionKey,
    position: Position,
    partition: Result<Arc<Partition>, KafkaError>,
    /// Its topic, whose traffic counters the answer adds to (metrics).
    topic: Option<Arc<crate::broker::Topic>>,
}

fn topic_key(version: i16, name: &TopicName, id: uuid::Uuid) -> TopicKey {
    if version >= 13 {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(name.to_string())
    }
}

/// The partitions a request lists, with their positions, in request order.
fn listed(version: i16, req: &FetchRequest) -> Vec<(PartitionKey, Position)> {
    req.topics
        .iter()
        .flat_map(|t| {
            let topic = topic_key(version, &t.topic, t.topic_id);
            t.partitions.iter().map(move |p| {
                (
                    PartitionKey {
                        topic: topic.clone(),
                        partition: p.partition,
                    },
                    Position {
                        fetch_offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes,
                    },
                )
            })
        })
        .collect()
}

fn forgotten(version: i16, req: &FetchRequest) -> Vec<PartitionKey> {
    req.forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_key(version, &t.topic, t.topic_id);
            t.partitions.iter().map(move |&partition| PartitionKey {
                topic: topic.clone(),
                partition,
            })
        })
        .collect()
}

fn topic_name(ctx: &RequestContext, topic: &TopicKey) -> Option<String> {
    match topic {
        TopicKey::Name(name) => Some(name.clone()),
        TopicKey::Id(id) => ctx.broker.topic_by_id(id).map(|t| t.name.clone()),
    }
}

fn resolve(
    ctx: &RequestContext,
    partitions: Vec<(PartitionKey, Position)>,
    denied: &std::collections::HashSet<String>,
) -> Vec<Wanted> {
    partitions
        .into_iter()
        .map(|(key, position)| {
            let topic = match &key.topic {
                _ if !denied.is_empty()
                    && topic_name(ctx, &key.topic).is_some_and(|n| denied.contains(&n)) =>
                {
                    Err(KafkaError::TopicAuthorizationFailed)
                }
                TopicKey::Id(id) => ctx.broker.topic_by_id(id).ok_or(KafkaError::UnknownTopicId),
                TopicKey::Name(name) => ctx
                    .broker
                    .topic(name)
                    .ok_or(KafkaError::UnknownTopicOrPartition),
            };
            let partition = topic.as_ref().map_err(|e| *e).and_then(|t| {
                t.partition(key.partition)
                    .ok_or(KafkaError::UnknownTopicOrPartition)
            });
            Wanted {
                key,
                position,
                partition,
                topic: topic.ok(),
            }
        })
        .collect()
}

/// How a fetch's `max_bytes` is shared out, in request order (KIP-74): each partition gets at
/// most its own limit and what is left; only the first partition with data may return a batch
/// larger than that, later ones return the whole batches that fit.
struct Budget {
    remaining: usize,
    total: usize,
    /// Bytes are set aside for remote reads whose answers are not known yet (`reserve`).
    reserved: bool,
}

impl Budget {
    fn new(max_bytes: i32) -> Self {
        Budget {
            remaining: max_bytes.max(0) as usize,
            total: 0,
            reserved: false,
        }
    }

    fn limit(&self, wanted: &Wanted) -> usize {
        (wanted.position.max_bytes.max(0) as usize).min(self.remaining)
    }

    /// Whether the next partition would be the first with data.
    fn first(&self) -> bool {
        self.total == 0 && !self.reserved
    }

    /// What to ask the partition's log for (it returns at least one batch when asked for any).
    fn to_read(&self, wanted: &Wanted) -> usize {
        let limit = self.limit(wanted);
        if self.first() {
            limit.max(1)
        } else {
            limit
        }
    }

    /// The part of `records` (read with at least `to_read`) this partition returns, counted.
    fn take(&mut self, wanted: &Wanted, records: Bytes) -> Bytes {
        let records = whole_batches_within(records, self.limit(wanted), self.first());
        self.remaining = self.remaining.saturating_sub(records.len());
        self.total += records.len();
        records
    }

    /// Sets aside the most a remote read may return, until its answer is known.
    fn reserve(&mut self, most: usize) {
        self.remaining = self.remaining.saturating_sub(most);
        self.reserved = true;
    }
}

/// One pass over every wanted partition; returns each one's answer and the bytes found.
///
/// Reads that a partition's own log answers run in request order. Reads that wait for remote
/// storage (Pulsar) run at once, each with the most it may return set aside from the fetch's
/// `max_bytes` (so the reads held at once stay within it). The answers are then cut to the
/// budget in request order; a read that was asked for less than it would have been in turn
/// (bytes set aside for reads before it that returned less) is read again, in turn. So the
/// response is the one reading the partitions in turn gives (a log returns a prefix of what it
/// returns when asked for more), without waiting for one cold partition after another.
async fn collect(
    wanted: &[Wanted],
    max_bytes: i32,
    isolation: Isolation,
) -> (Vec<PartitionData>, usize, bool) {
    let mut plan = Budget::new(max_bytes);
    let mut asked = Vec::with_capacity(wanted.len());
    let started: Vec<_> = wanted
        .iter()
        .map(|w| {
            let ask = plan.to_read(w);
            asked.push(ask);
            let started = w
                .partition
                .as_ref()
                .map_err(|e| *e)
                .and_then(|p| p.start_read(w.position.fetch_offset, ask, isolation));
            match &started {
                Ok(StartedRead::Done(read)) => drop(plan.take(w, read.records.clone())),
                Ok(StartedRead::Remote(read)) => plan.reserve(read.most_bytes()),
                Err(_) => {}
            }
            started
        })
        .collect();
    let mut budget = Budget::new(max_bytes);
    let mut any_error = false;
    let answers = finish_reads(started)
        .await
        .into_iter()
        .zip(wanted.iter().zip(asked))
        .map(|(read, (w, ask))| {
            let want = budget.to_read(w);
            let read = match (read, &w.partition) {
                (Ok(_), Ok(p)) if ask < want => p.read(w.position.fetch_offset, want, isolation),
                (read, _) => read,
            };
            let mut data = PartitionData::default().with_partition_index(w.key.partition);
            match read {
                Ok(r) => {
                    data.records = Some(budget.take(w, r.records));
                    data.high_watermark = r.high_watermark;
                    data.last_stable_offset = r.last_stable_offset;
                    data.log_start_offset = r.log_start_offset;
                    // Kafka: a list for read_committed, null for read_uncommitted.
                    data.aborted_transactions = None;
                    if isolation == Isolation::ReadCommitted {
                        data.aborted_transactions = Some(
                            r.aborted
                                .iter()
                                .map(|a| {
                                    AbortedTransaction::default()
                                        .with_producer_id(a.producer_id.into())
                                        .with_first_offset(a.first_offset)
                                })
                                .collect(),
                        );
                    }
                }
                Err(e) => {
                    any_error = true;
                    data.error_code = e.code();
                    data.high_watermark = -1;
                    data.last_stable_offset = -1;
                    data.log_start_offset = -1;
                    data.records = Some(Bytes::new());
                }
            }
            data
        })
        .collect();
    (answers, budget.total, any_error)
}

/// Completes the started reads: one remote read on this task, several at once on blocking
/// threads (each waits for its own Pulsar reader).
async fn finish_reads(
    started: Vec<Result<StartedRead, KafkaError>>,
) -> Vec<Result<ReadResult, KafkaError>> {
    let remote = started
        .iter()
        .filter(|s| matches!(s, Ok(StartedRead::Remote(_))))
        .count();
    if remote < 2 {
        return started
            .into_iter()
            .map(|s| match s? {
                StartedRead::Done(read) => Ok(read),
                StartedRead::Remote(read) => read.finish(),
            })
            .collect();
    }
    let running: Vec<_> = started
        .into_iter()
        .map(|s| match s {
            Ok(StartedRead::Remote(read)) => Err(tokio::task::spawn_blocking(|| read.finish())),
            Ok(StartedRead::Done(read)) => Ok(Ok(read)),
            Err(e) => Ok(Err(e)),
        })
        .collect();
    let mut reads = Vec::with_capacity(running.len());
    for r in running {
        reads.push(match r {
            Ok(done) => done,
            Err(task) => task.await.unwrap_or(Err(KafkaError::UnknownServerError)),
        });
    }
    reads
}

fn told(data: &PartitionData) -> Told {
    Told {
        has_records: data.records.as_ref().is_some_and(|r| !r.is_empty()),
        error: data.error_code != 0,
        high_watermark: data.high_watermark,
        last_stable_offset: data.last_stable_offset,
        log_start_offset: data.log_start_offset,
    }
}

/// The answers grouped by topic, in order (consecutive partitions of one topic share an entry).
fn by_topic(
    answers: impl IntoIterator<Item = (PartitionKey, PartitionData)>,
) -> Vec<FetchableTopicResponse> {
    let mut topics: Vec<(TopicKey, FetchableTopicResponse)> = Vec::new();
    for (key, data) in answers {
        match topics.last_mut() {
            Some((topic, entry)) if *topic == key.topic => entry.partitions.push(data),
            _ => {
                let entry = match &key.topic {
                    TopicKey::Name(name) => {
                        FetchableTopicResponse::default().with_topic(TopicName(sb(name.as_str())))
                    }
                    TopicKey::Id(id) => FetchableTopicResponse::default().with_topic_id(*id),
                };
                topics.push((key.topic, entry.with_partitions(vec![data])));
            }
        }
    }
    topics.into_iter().map(|(_, t)| t).collect()
}

/// The records fields of a response large enough to be written without a copy, in the order
/// the response encodes them.
pub fn large_records(resp: &FetchResponse) -> Vec<Bytes> {
    resp.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref())
        .filter(|r| r.len() >= crate::codec::segments::MIN_SHARED_BYTES)
        .cloned()
        .collect()
}

/// The longest prefix of `records` made of whole batches and at most `limit` bytes long; with
/// `keep_first`, at least the first batch whatever its size (KIP-74).
fn whole_batches_within(records: Bytes, limit: usize, keep_first: bool) -> Bytes {
    if records.len() <= limit {
        return records;
    }
    let mut end = 0usize;
    while let Some(length) = records.get(end + 8..end + LOG_OVERHEAD) {
        let size =
            LOG_OVERHEAD + i32::from_be_bytes(length.try_into().expect("4 bytes")).max(0) as usize;
        if end + size > limit && !(keep_first && end == 0) {
            break;
        }
        end += size;
    }
    records.slice(..end.min(records.len()))
}

pub async fn handle(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: FetchRequest,
) -> FetchResponse {
    let version = header.request_api_version;
    let sessions = &ctx.broker.fetch_sessions;
    let plan = match (version >= 7, req.session_id, req.session_epoch) {
        (false, _, _) => SessionPlan::None,
        (true, id, FINAL_EPOCH) => {
            sessions.close(id);
            SessionPlan::None
        }
        (true, id, INITIAL_EPOCH) => {
            sessions.close(id);
            SessionPlan::Open
        }
        (true, id, _) => SessionPlan::Incremental(id),
    };
    let partitions = match plan {
        SessionPlan::Incremental(id) => match sessions.begin_incremental(
            id,
            req.session_epoch,
            &ctx.principal.to_string(),
            listed(version, &req),
            &forgotten(version, &req),
            Instant::now(),
        ) {
            Ok(partitions) => partitions,
            Err(e) => return FetchResponse::default().with_error_code(e.code()),
        },
        _ => listed(version, &req),
    };
    // Consumers need READ on each topic (follower fetches, CLUSTER_ACTION, don't exist here).
    // Names are collected only when an authorizer must be asked (not on the allow-all path).
    let denied = if authz::allow_all(ctx) {
        Default::default()
    } else {
        let names: Vec<String> = partitions
            .iter()
            .filter_map(|(key, _)| topic_name(ctx, &key.topic))
            .collect();
        authz::denied(
            ctx,
            "Fetch",
            authz::Operation::Read,
            authz::ResourceType::Topic,
            names.iter().map(String::as_str),
        )
        .await
    };
    let wanted = resolve(ctx, partitions, &denied);
    // Subscribe before the first read so an append between read and wait is not missed.
    let mut watchers: Vec<watch::Receiver<LogMark>> = wanted
        .iter()
        .filter_map(|w| w.partition.as_ref().ok().map(|p| p.subscribe()))
        .collect();
    // A consumer with a byte rate quota gets at most what its quota allows over its window.
    let client = ctx.quota_client(header);
    let quota_max = ctx.broker.quotas.fetch_max_bytes(&client);
    let max_bytes = req
        .max_bytes
        .min(FETCH_MAX_BYTES)
        .min(quota_max.map_or(i32::MAX, |b| b.min(i32::MAX as usize) as i32));
    let isolation = if req.isolation_level == 1 {
        Isolation::ReadCommitted
    } else {
        Isolation::ReadUncommitted
    };
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let mut shutdown = ctx.shutdown.clone();
    let answers = loop {
        for w in watchers.iter_mut() {
            w.borrow_and_update();
        }
        let (answers, total, any_error) = collect(&wanted, max_bytes, isolation).await;
        let done = total >= req.min_bytes.max(0) as usize
            || any_error
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline
            || shutdown.is_set();
        if done {
            break answers;
        }
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.wait() => {}
        }
    };
    // Counted once, on the answer (not on each pass of a waiting fetch).
    for (w, data) in wanted.iter().zip(&answers) {
        if let (Some(t), Some(records)) = (&w.topic, &data.records) {
            t.traffic.fetched(records);
        }
    }
    // Kafka: a fetch that takes the consumer over its quota is answered empty (its bytes are
    // not counted) and the connection muted for the throttle time.
    let bytes: usize = answers
        .iter()
        .map(|a| a.records.as_ref().map_or(0, Bytes::len))
        .sum();
    let now = crate::now_ms() as u64;
    let throttle = ctx.broker.quotas.record_fetch(&client, bytes, now);
    if throttle > 0 {
        ctx.broker.quotas.unrecord_fetch(&client, bytes, now);
        ctx.throttle(crate::metrics::throttles::Quota::Fetch, throttle);
        let resp = FetchResponse::default().with_throttle_time_ms(throttle as i32);
        return match plan {
            SessionPlan::Incremental(id) => resp.with_session_id(id),
            _ => resp,
        };
    }
    let answered = wanted.into_iter().map(|w| (w.key, w.position)).zip(answers);
    match plan {
        SessionPlan::None => FetchResponse::default()
            .with_responses(by_topic(answered.map(|((key, _), data)| (key, data)))),
        SessionPlan::Open => {
            let answered: Vec<_> = answered.collect();
            let cached = answered
                .iter()
                .map(|((key, position), data)| (key.clone(), *position, told(data)))
                .collect();
            let session_id = sessions
                .open(&ctx.principal.to_string(), cached, Instant::now())
                .unwrap_or(0);
            FetchResponse::default()
                .with_session_id(session_id)
                .with_responses(by_topic(
                    answered.into_iter().map(|((key, _), data)| (key, data)),
                ))
        }
        SessionPlan::Incremental(id) => {
            let answered: Vec<_> = answered.map(|((key, _), data)| (key, data)).collect();
            let found: Vec<_> = answered
                .iter()
                .map(|(key, data)| (key.clone(), told(data)))
                .collect();
            let include = sessions.answered(id, &found);
            FetchResponse::default()
                .with_session_id(id)
                .with_responses(by_topic(
                    answered
                        .into_iter()
                        .zip(include)
                        .filter_map(|(answer, news)| news.then_some(answer)),
                ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches reduced to what the cut looks at: base offset, length, and filler.
    fn batches(bodies: &[usize]) -> Bytes {
        let mut out = Vec::new();
        for (i, &body) in bodies.iter().enumerate() {
            out.extend_from_slice(&(i as i64).to_be_bytes());
            out.extend_from_slice(&(body as i32).to_be_bytes());
            out.extend(std::iter::repeat_n(0xab, body));
        }
        out.into()
    }

    fn fetch_request(isolation_level: i8, fetch_offset: i64, session_epoch: i32) -> FetchRequest {
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        FetchRequest::default()
            .with_max_bytes(1 << 20)
            .with_isolation_level(isolation_level)
            .with_session_epoch(session_epoch)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(sb("t")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(fetch_offset)
                    .with_partition_max_bytes(1 << 20)])])
    }

    #[tokio::test]
    async fn read_committed_stops_at_the_lso_with_the_aborted_transactions() {
        use crate::broker::txn_tests::append_txn;
        use crate::records::control::ControlKind;
        let ctx = RequestContext::builder().build();
        let p = ctx.topic("t", 1).partition(0).unwrap();
        append_txn(&p, 1, 0, 0, 2); // 0-1, aborted at 2
        ctx.broker
            .write_txn_marker("t", 0, 1, 0, ControlKind::Abort, 0)
            .await
            .unwrap();
        append_txn(&p, 2, 0, 0, 1); // 3, open
        let header = ctx.header(ApiKey::Fetch, 12);
        let committed = handle(&ctx, &header, fetch_request(1, 0, -1)).await;
        let part = &committed.responses[0].partitions[0];
        assert_eq!((part.high_watermark, part.last_stable_offset), (4, 3));
        let aborted = part.aborted_transactions.as_ref().unwrap();
        assert_eq!(aborted.len(), 1);
        assert_eq!((aborted[0].producer_id.0, aborted[0].first_offset), (1, 0));
        let committed_bytes = part.records.as_ref().unwrap().len();
        // read_uncommitted: up to the high watermark, the LSO reported, no aborted list.
        let uncommitted = handle(&ctx, &header, fetch_request(0, 0, -1)).await;
        let part = &uncommitted.responses[0].partitions[0];
        assert_eq!((part.high_watermark, part.last_stable_offset), (4, 3));
        assert!(part.aborted_transactions.is_none());
        assert!(part.records.as_ref().unwrap().len() > committed_bytes);
        // At the LSO read_committed waits: nothing yet.
        let waiting = handle(&ctx, &header, fetch_request(1, 3, -1)).await;
        let part = &waiting.responses[0].partitions[0];
        assert!(part.records.as_ref().unwrap().is_empty());
        assert_eq!(part.aborted_transactions.as_ref().map(Vec::len), Some(0));
    }

    #[tokio::test]
    async fn an_incremental_session_reports_a_moved_lso() {
        use crate::broker::txn_tests::append_txn;
        use crate::records::control::ControlKind;
        let ctx = RequestContext::builder().build();
        let p = ctx.topic("t", 1).partition(0).unwrap();
        append_txn(&p, 1, 0, 0, 1);
        let header = ctx.header(ApiKey::Fetch, 12);
        let opened = handle(&ctx, &header, fetch_request(1, 0, 0)).await;
        let id = opened.session_id;
        assert_ne!(id, 0);
        assert_eq!(opened.responses[0].partitions[0].last_stable_offset, 0);
        // Nothing changed: the incremental answer leaves the partition out.
        let incremental = FetchRequest::default()
            .with_max_bytes(1 << 20)
            .with_isolation_level(1)
            .with_session_id(id)
            .with_session_epoch(1);
        let quiet = handle(&ctx, &header, incremental.clone()).await;
        assert!(quiet.responses.is_empty());
        // The commit marker moves the LSO (and the high watermark): the partition is news.
        ctx.broker
            .write_txn_marker("t", 0, 1, 0, ControlKind::Commit, 0)
            .await
            .unwrap();
        let news = handle(&ctx, &header, incremental.with_session_epoch(2)).await;
        let part = &news.responses[0].partitions[0];
        assert_eq!((part.high_watermark, part.last_stable_offset), (2, 2));
        assert!(!part.records.as_ref().unwrap().is_empty());
    }

    #[test]
    fn later_partitions_get_only_whole_batches_within_their_limit() {
        let all = batches(&[88, 188, 38]); // 100 + 200 + 50 bytes
        assert_eq!(whole_batches_within(all.clone(), 350, false), all);
        assert_eq!(whole_batches_within(all.clone(), 349, false).len(), 300);
        assert_eq!(whole_batches_within(all.clone(), 299, false).len(), 100);
        assert_eq!(whole_batches_within(all.clone(), 99, false).len(), 0);
        assert_eq!(whole_batches_within(all.clone(), 0, false).len(), 0);
        // The first partition with data keeps its first batch whatever its size.
        assert_eq!(whole_batches_within(all.clone(), 99, true).len(), 100);
        assert_eq!(whole_batches_within(all, 0, true).len(), 100);
    }

    type FakeBackend = crate::storage::remote::fake::FakeBackend;

    /// Partitions 0 and 1 of "t" on one fake remote backend, three batches each, of which only
    /// the newest stays in the tail cache; the backend's reads then wait for `reads_together`
    /// of them to start. Also the size of one batch.
    async fn cold_remote_partitions(
        reads_together: usize,
    ) -> (Arc<FakeBackend>, Vec<Arc<Partition>>, usize) {
        use crate::broker::partition::tests::{remote_partition_of, stored, PRODUCED};
        use crate::records::batch::tests::sample_batch;
        let backend = Arc::new(FakeBackend::default());
        let batch = sample_batch(3, 1_000, b"value", (-1, -1, -1));
        let mut partitions = Vec::new();
        for index in 0..2 {
            let p = remote_partition_of(backend.clone(), index, 1);
            for _ in 0..3 {
                let (_, durable) = p
                    .append(bytes::BytesMut::from(&batch[..]), &PRODUCED)
                    .unwrap();
                stored(durable).await.unwrap();
            }
            partitions.push(p);
        }
        backend
            .reads_together
            .store(reads_together, std::sync::atomic::Ordering::SeqCst);
        (backend, partitions, batch.len())
    }

    fn sizes(answers: &[PartitionData]) -> Vec<usize> {
        answers
            .iter()
            .map(|a| a.records.as_ref().unwrap().len())
            .collect()
    }

    fn reads_in_flight_max(backend: &FakeBackend) -> usize {
        backend
            .reads_in_flight_max
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    fn wanted_from_start(partitions: &[Arc<Partition>], max_bytes: i32) -> Vec<Wanted> {
        partitions
            .iter()
            .enumerate()
            .map(|(i, p)| Wanted {
                key: PartitionKey {
                    topic: TopicKey::Name("t".into()),
                    partition: i as i32,
                },
                position: Position {
                    fetch_offset: 0,
                    max_bytes,
                },
                partition: Ok(p.clone()),
                topic: None,
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cold_partitions_are_read_from_remote_storage_at_once() {
        let (backend, partitions, batch) = cold_remote_partitions(2).await;
        let wanted = wanted_from_start(&partitions, 1 << 20);
        let (answers, total, any_error) =
            collect(&wanted, 8 << 20, Isolation::ReadUncommitted).await;
        assert!(!any_error);
        assert_eq!(reads_in_flight_max(&backend), 2);
        assert_eq!(sizes(&answers), vec![3 * batch, 3 * batch]);
        assert_eq!(total, 6 * batch);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_at_once_share_the_fetch_limit_in_request_order() {
        let (_, partitions, batch) = cold_remote_partitions(0).await;
        let fetch = |max_bytes: usize, partition_max: usize| {
            let wanted = wanted_from_start(&partitions, partition_max as i32);
            async move {
                collect(&wanted, max_bytes as i32, Isolation::ReadUncommitted)
                    .await
                    .0
            }
        };
        // The first partition takes two whole batches; the half batch left is none for the next.
        assert_eq!(
            sizes(&fetch(2 * batch + batch / 2, 1 << 20).await),
            vec![2 * batch, 0]
        );
        // Less than one batch: the first partition still returns one (KIP-74), the next none.
        assert_eq!(sizes(&fetch(batch / 2, 1 << 20).await), vec![batch, 0]);
        // Each partition's own limit: one batch each.
        assert_eq!(sizes(&fetch(1 << 20, batch + 1).await), vec![batch, batch]);
        // The limit left after the first partition: four batches in all.
        assert_eq!(
            sizes(&fetch(4 * batch, 1 << 20).await),
            vec![3 * batch, batch]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_held_at_once_stay_within_the_fetch_limit() {
        let (backend, partitions, batch) = cold_remote_partitions(2).await;
        // 1 MiB is one batch of the topic's largest (max.message.bytes): the first read may
        // return all of it, so the second waits and is read in turn, with what is left.
        let wanted = wanted_from_start(&partitions, 1 << 20);
        let (answers, _, _) = collect(&wanted, 1 << 20, Isolation::ReadUncommitted).await;
        assert_eq!(reads_in_flight_max(&backend), 1);
        assert_eq!(sizes(&answers), vec![3 * batch, 3 * batch]);
    }
}
