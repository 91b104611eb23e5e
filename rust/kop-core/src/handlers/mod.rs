//! Request dispatch. The `served!` table below is the single list of APIs kop implements: it
//! generates both the dispatcher and what ApiVersions advertises, so nothing unimplemented is
//! ever advertised.

mod acls;
mod admin_topics;
mod api_versions;
pub mod authz;
mod broker_configs;
mod client_quotas;
mod configs;
mod consumer_groups;
mod delete_records;
mod describe_producers;
mod fetch;
mod group_configs;
mod groups;
mod leader_epochs;
mod list_offsets;
mod log_dirs;
mod metadata;
mod mutation_quota;
mod offsets;
mod produce;
mod produce_legacy;
mod produce_txn;
mod producer_id;
mod replicas;
mod response_errors;
mod response_throttle;
mod sasl;
mod scram_admin;
mod share_fetch;
mod share_groups;
mod share_offsets;
#[cfg(test)]
mod share_offsets_tests;
mod share_wire;
/// The hand-written ShareFetch / ShareAcknowledge v2 and DescribeShareGroupOffsets v1
/// decoders, for the fuzz target `share_wire`.
#[cfg(feature = "fuzzing")]
pub use share_wire::{
    decode_for_fuzzing as decode_share_v2_body, sample_bodies as share_v2_sample_bodies,
};
mod streams_groups;
mod streams_wire;
/// The hand-written Streams group decoders, for the fuzz target `streams_wire`.
#[cfg(feature = "fuzzing")]
pub use streams_wire::{
    decode_for_fuzzing as decode_streams_body, sample_bodies as streams_sample_bodies,
};
#[cfg(test)]
pub(crate) mod test_context;
mod topic_partitions;
mod transaction_admin;
mod transactions;
#[cfg(test)]
mod transactions_tests;
mod txn_offsets;
mod write_txn_markers;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
#[cfg(test)]
use kafka_protocol::protocol::{Message, Request, VersionRange};

use crate::broker::Broker;
use crate::codec::frame::{encode_response, RequestFrame};
use crate::codec::segments::encode_response_segments;
use response_throttle::ThrottleTime;

/// How the client reaches this broker through the listener it connected to.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    pub name: String,
    pub advertised_host: String,
    pub advertised_port: i32,
}

/// What a handler needs besides the request.
pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub listener: Arc<ListenerInfo>,
    pub peer: SocketAddr,
    /// Unique per connection of this process (share sessions end with the connection that
    /// opened them).
    pub connection_id: u64,
    /// Set when the server is stopping: waiting fetches return at once.
    pub shutdown: crate::shutdown::ShutdownSignal,
    /// Request memory, unauthenticated connections, bad-input log lines (`limits/`).
    pub limits: Arc<crate::limits::ConnectionLimits>,
    /// Listener protocols, credentials, TLS and the authorizer.
    pub security: Arc<crate::auth::Security>,
    /// Who is on the other end: `User:ANONYMOUS` until SASL or a client certificate says.
    pub principal: crate::auth::Principal,
    /// Set by a request that earned a quota throttle: the connection reads nothing more for
    /// that long (`quotas/`, `net/connection.rs`).
    pub mute: crate::quotas::Mute,
}

impl RequestContext {
    /// The client of a request, as quotas see it.
    pub fn quota_client<'a>(&'a self, header: &'a RequestHeader) -> crate::quotas::Client<'a> {
        crate::quotas::Client {
            user: &self.principal.name,
            client_id: header.client_id.as_deref().unwrap_or(""),
        }
    }

    /// A response throttled `ms` by `quota`: the connection is muted for that long after it,
    /// and the throttle is counted (0: not throttled).
    pub fn throttle(&self, quota: crate::metrics::throttles::Quota, ms: u64) {
        self.mute.at_least(ms);
        self.broker.metrics.throttles.throttled(quota, ms);
    }
}

/// The result of handling one request.
pub enum Outcome {
    Respond(Bytes),
    /// A response in segments, written in order: large record batches are not copied into
    /// it (`codec/segments.rs`).
    RespondSegments(Vec<Bytes>),
    /// acks=0 produce: Kafka sends nothing back.
    NoResponse,
    /// The request cannot be answered under the protocol: close the connection.
    Close(String),
    /// The request is processed (e.g. a produce is appended) and what is left only waits (for
    /// the backend's receipts); the connection awaits it in order while it reads on
    /// (`net/connection.rs`). Resolves to one of the other variants.
    Later(Deferred),
}

/// The waiting rest of a request (see `Outcome::Later`).
pub type Deferred = std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'static>>;

macro_rules! served {
    ($( $key:ident [$min:literal ..= $max:literal] $req:ident => $handler:path; )*) => {
        /// (API, min version, max version) for every API kop serves.
        pub const SERVED: &[(ApiKey, i16, i16)] = &[
            (ApiKey::Produce, produce::ADVERTISED_MIN, produce::MAX),
            $((ApiKey::$key, $min, $max),)*
        ];

        /// (API, served min, served max, codec range of the request, of the response).
        #[cfg(test)]
        fn codec_ranges() -> Vec<(ApiKey, i16, i16, VersionRange, VersionRange)> {
            vec![
                (ApiKey::Produce, produce::DECODABLE_MIN, produce::MAX, ProduceRequest::VERSIONS, ProduceResponse::VERSIONS),
                $((ApiKey::$key, $min, $max, <$req as Message>::VERSIONS, <<$req as Request>::Response as Message>::VERSIONS),)*
            ]
        }

        /// Decodes a request body of a served API and version exactly as `dispatch_served`
        /// does (same table, same decoder calls), without handling it: the fuzz targets
        /// (`fuzz/`) reach every request kop decodes through this.
        #[cfg(feature = "fuzzing")]
        pub fn decode_body(header: &RequestHeader, api_key: ApiKey, mut body: Bytes) -> anyhow::Result<()> {
            let version = header.request_api_version;
            match api_key {
                ApiKey::Produce if version < produce::DECODABLE_MIN => {
                    produce_legacy::handle(header, body);
                }
                ApiKey::Produce => {
                    ProduceRequest::decode(&mut body, version)?;
                }
                $(ApiKey::$key => {
                    $req::decode(&mut body, version)?;
                })*
                _ => {}
            }
            Ok(())
        }

        /// The encoding of a default (empty) request body, for the fuzz targets' seeds.
        #[cfg(feature = "fuzzing")]
        pub fn default_body(api_key: ApiKey, version: i16) -> anyhow::Result<Bytes> {
            let mut out = bytes::BytesMut::new();
            match api_key {
                ApiKey::Produce => ProduceRequest::default().encode(&mut out, version)?,
                $(ApiKey::$key => $req::default().encode(&mut out, version)?,)*
                other => anyhow::bail!("{other:?} is not served"),
            }
            Ok(out.freeze())
        }

        async fn dispatch_served(
            ctx: &RequestContext,
            frame: RequestFrame,
            started: std::time::Instant,
        ) -> anyhow::Result<Outcome> {
            let version = frame.header.request_api_version;
            let correlation_id = frame.header.correlation_id;
            let mut body = frame.body;
            match frame.api_key {
                ApiKey::Produce if version < produce::DECODABLE_MIN => {
                    Ok(produce_legacy::handle(&frame.header, body))
                }
                ApiKey::Produce => {
                    // The records stay slices of the body; nothing else may keep a reference
                    // to it for them to be patched in place (produce::take_records).
                    let whole = body.clone();
                    let req = ProduceRequest::decode(&mut body, version)?;
                    drop(body);
                    let mut header = frame.header;
                    let client = ctx.quota_client(&header);
                    let throttle = ctx.broker.quotas.record_produce(&client, whole.len(), crate::now_ms() as u64);
                    ctx.throttle(crate::metrics::throttles::Quota::Produce, throttle);
                    header.client_id = None;
                    header.unknown_tagged_fields.clear();
                    Ok(produce::handle(ctx, &header, req, whole, throttle as i32).await)
                }
                $(ApiKey::$key => {
                    let req = $req::decode(&mut body, version)?;
                    let mut resp = $handler(ctx, &frame.header, req).await;
                    response_errors::count(&ctx.broker.metrics.requests, ApiKey::$key, &resp);
                    let client_id = frame.header.client_id.as_deref();
                    let throttle = request_time_throttle(ctx, ApiKey::$key, client_id, started);
                    resp.raise_throttle(throttle.min(i32::MAX as u64) as i32);
                    respond(ApiKey::$key, version, correlation_id, &resp)
                })*
                other => Ok(Outcome::Close(format!("API {other:?} is not served"))),
            }
        }
    };
}

served! {
    SaslHandshake [0 ..= 1] SaslHandshakeRequest => sasl::handshake;
    SaslAuthenticate [0 ..= 2] SaslAuthenticateRequest => sasl::authenticate;
    DescribeAcls [1 ..= 3] DescribeAclsRequest => acls::describe_acls;
    CreateAcls [1 ..= 3] CreateAclsRequest => acls::create_acls;
    DeleteAcls [1 ..= 3] DeleteAclsRequest => acls::delete_acls;
    DescribeUserScramCredentials [0 ..= 0] DescribeUserScramCredentialsRequest => scram_admin::describe;
    AlterUserScramCredentials [0 ..= 0] AlterUserScramCredentialsRequest => scram_admin::alter;
    DescribeClientQuotas [0 ..= 1] DescribeClientQuotasRequest => client_quotas::describe;
    AlterClientQuotas [0 ..= 1] AlterClientQuotasRequest => client_quotas::alter;
    Fetch [4 ..= 17] FetchRequest => fetch::handle;
    ListOffsets [1 ..= 10] ListOffsetsRequest => list_offsets::handle;
    DeleteRecords [0 ..= 2] DeleteRecordsRequest => delete_records::handle;
    Metadata [0 ..= 13] MetadataRequest => metadata::handle;
    ApiVersions [0 ..= 4] ApiVersionsRequest => api_versions::handle;
    CreateTopics [2 ..= 7] CreateTopicsRequest => admin_topics::create_topics;
    DeleteTopics [1 ..= 6] DeleteTopicsRequest => admin_topics::delete_topics;
    InitProducerId [0 ..= 5] InitProducerIdRequest => producer_id::handle;
    DescribeConfigs [1 ..= 4] DescribeConfigsRequest => configs::describe_configs;
    IncrementalAlterConfigs [0 ..= 1] IncrementalAlterConfigsRequest => configs::incremental_alter_configs;
    AlterConfigs [0 ..= 2] AlterConfigsRequest => configs::alter_configs;
    CreatePartitions [0 ..= 3] CreatePartitionsRequest => admin_topics::create_partitions;
    DescribeCluster [0 ..= 2] DescribeClusterRequest => metadata::describe_cluster;
    FindCoordinator [0 ..= 6] FindCoordinatorRequest => groups::find_coordinator;
    JoinGroup [0 ..= 9] JoinGroupRequest => groups::join_group;
    SyncGroup [0 ..= 5] SyncGroupRequest => groups::sync_group;
    Heartbeat [0 ..= 4] HeartbeatRequest => groups::heartbeat;
    LeaveGroup [0 ..= 5] LeaveGroupRequest => groups::leave_group;
    DescribeGroups [0 ..= 6] DescribeGroupsRequest => groups::describe_groups;
    ListGroups [0 ..= 5] ListGroupsRequest => groups::list_groups;
    DeleteGroups [0 ..= 2] DeleteGroupsRequest => groups::delete_groups;
    OffsetCommit [2 ..= 9] OffsetCommitRequest => offsets::offset_commit;
    OffsetFetch [1 ..= 9] OffsetFetchRequest => offsets::offset_fetch;
    OffsetDelete [0 ..= 0] OffsetDeleteRequest => offsets::offset_delete;
    TxnOffsetCommit [0 ..= 5] TxnOffsetCommitRequest => txn_offsets::handle;
    ConsumerGroupHeartbeat [0 ..= 1] ConsumerGroupHeartbeatRequest => consumer_groups::heartbeat;
    ConsumerGroupDescribe [0 ..= 1] ConsumerGroupDescribeRequest => consumer_groups::describe;
    ShareGroupHeartbeat [1 ..= 1] ShareGroupHeartbeatRequest => share_groups::heartbeat;
    ShareGroupDescribe [1 ..= 1] ShareGroupDescribeRequest => share_groups::describe;
    ShareFetch [1 ..= 1] ShareFetchRequest => share_fetch::fetch;
    ShareAcknowledge [1 ..= 1] ShareAcknowledgeRequest => share_fetch::acknowledge_request;
    DescribeShareGroupOffsets [0 ..= 0] DescribeShareGroupOffsetsRequest => share_groups::describe_offsets;
    AlterShareGroupOffsets [0 ..= 0] AlterShareGroupOffsetsRequest => share_offsets::alter_offsets;
    DeleteShareGroupOffsets [0 ..= 0] DeleteShareGroupOffsetsRequest => share_offsets::delete_offsets;
    DescribeTopicPartitions [0 ..= 0] DescribeTopicPartitionsRequest => topic_partitions::handle;
    OffsetForLeaderEpoch [2 ..= 4] OffsetForLeaderEpochRequest => leader_epochs::handle;
    DescribeLogDirs [1 ..= 4] DescribeLogDirsRequest => log_dirs::handle;
    ElectLeaders [0 ..= 2] ElectLeadersRequest => replicas::elect_leaders;
    ListPartitionReassignments [0 ..= 0] ListPartitionReassignmentsRequest => replicas::list_partition_reassignments;
    AlterPartitionReassignments [0 ..= 1] AlterPartitionReassignmentsRequest => replicas::alter_partition_reassignments;
    AddPartitionsToTxn [0 ..= 5] AddPartitionsToTxnRequest => transactions::add_partitions;
    AddOffsetsToTxn [0 ..= 4] AddOffsetsToTxnRequest => transactions::add_offsets;
    EndTxn [0 ..= 5] EndTxnRequest => transactions::end;
    DescribeTransactions [0 ..= 0] DescribeTransactionsRequest => transaction_admin::describe;
    ListTransactions [0 ..= 2] ListTransactionsRequest => transaction_admin::list;
    DescribeProducers [0 ..= 0] DescribeProducersRequest => describe_producers::handle;
    WriteTxnMarkers [1 ..= 1] WriteTxnMarkersRequest => write_txn_markers::handle;
}

/// Encodes a handler's response; a Fetch response's large record batches are left in place
/// (segments) rather than copied into the response.
fn respond<R: Encodable + 'static>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    resp: &R,
) -> anyhow::Result<Outcome> {
    if let Some(fetched) = (resp as &dyn std::any::Any).downcast_ref::<FetchResponse>() {
        let shared = fetch::large_records(fetched);
        if !shared.is_empty() {
            let segments = encode_response_segments(key, version, correlation_id, resp, shared)?;
            return Ok(Outcome::RespondSegments(segments));
        }
    }
    Ok(Outcome::Respond(encode_response(
        key,
        version,
        correlation_id,
        resp,
    )?))
}

/// The versions kop serves of an API, if it serves it.
pub fn served_range(key: ApiKey) -> Option<(i16, i16)> {
    SERVED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// Handles one request frame.
pub async fn dispatch(ctx: &RequestContext, frame: RequestFrame) -> Outcome {
    let started = std::time::Instant::now();
    let key = frame.api_key;
    let version = frame.header.request_api_version;
    if let Some(raw) = frame.extra_key {
        // Counted under its own wire key, not the sibling the frame's header was decoded as.
        let outcome = streams_groups::dispatch(ctx, raw, frame).await;
        return timed(&ctx.broker, raw, version, started, outcome);
    }
    if share_wire::is_hand_written(key as i16, version) {
        let outcome = if key == ApiKey::DescribeShareGroupOffsets {
            share_groups::dispatch_offsets_v1(ctx, frame, started).await
        } else {
            share_fetch::dispatch_v2(ctx, frame, started).await
        };
        return timed(&ctx.broker, key as i16, version, started, outcome);
    }
    let Some((min, max)) = served_range(key) else {
        return Outcome::Close(format!("API {key:?} is not served"));
    };
    if version < min || version > max {
        if key == ApiKey::ApiVersions {
            return api_versions::unsupported_version(frame.header.correlation_id);
        }
        return Outcome::Close(format!("{key:?} v{version} is not served (v{min}-v{max})"));
    }
    // A Produce's request time mutes the connection but is not in its response (the answer
    // may wait for the storage); every other API's is (`dispatch_served`).
    let produce_client_id = (key == ApiKey::Produce).then(|| frame.header.client_id.clone());
    let outcome = match dispatch_served(ctx, frame, started).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Close(format!("{key:?} v{version}: {e}")),
    };
    if let Some(client_id) = produce_client_id {
        request_time_throttle(ctx, key, client_id.as_deref(), started);
    }
    timed(&ctx.broker, key as i16, version, started, outcome)
}

/// Records a handled request of wire key `key`: at once for an answer that is ready, when the
/// wait ends for a produce that waits for the storage (`Outcome::Later`, counted as waiting
/// meanwhile).
fn timed(
    broker: &Arc<Broker>,
    key: i16,
    version: i16,
    started: std::time::Instant,
    outcome: Outcome,
) -> Outcome {
    let Outcome::Later(wait) = outcome else {
        broker
            .metrics
            .requests
            .record(key, version, started.elapsed());
        return outcome;
    };
    /// Ends the wait however the future ends (answered, or dropped with the connection).
    struct Waiting(Arc<Broker>, i16, i16, std::time::Instant);
    impl Drop for Waiting {
        fn drop(&mut self) {
            let r = &self.0.metrics.requests;
            r.produce_waiting
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            r.record(self.1, self.2, self.3.elapsed());
        }
    }
    broker
        .metrics
        .requests
        .produce_waiting
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let waiting = Waiting(broker.clone(), key, version, started);
    Outcome::Later(Box::pin(async move {
        let outcome = wait.await;
        drop(waiting);
        outcome
    }))
}

/// Records the time spent on a request of `key` since `started` against the client's
/// `request_percentage` quota, if its time counts; the throttle it earns (the connection is
/// muted for it).
fn request_time_throttle(
    ctx: &RequestContext,
    key: ApiKey,
    client_id: Option<&str>,
    started: std::time::Instant,
) -> u64 {
    if !request_time_counts(key) {
        return 0;
    }
    let client = crate::quotas::Client {
        user: &ctx.principal.name,
        client_id: client_id.unwrap_or(""),
    };
    let nanos = started.elapsed().as_nanos() as u64;
    let now = crate::now_ms() as u64;
    let throttle = ctx.broker.quotas.record_request_time(&client, nanos, now);
    ctx.throttle(crate::metrics::throttles::Quota::Request, throttle);
    throttle
}

/// Whether a request's handling time counts against `request_percentage`. Kafka exempts the
/// requests a client needs to connect and authenticate; Fetch is left out here because its
/// time is mostly the long poll, which takes no thread in Kafka (kop cannot tell the two apart).
fn request_time_counts(key: ApiKey) -> bool {
    !matches!(
        key,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate | ApiKey::Fetch
    )
}

/// `StrBytes` from a `String`.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// The highest version kop serves of `key` (for parsing headers of versions it doesn't).
pub fn max_served(key: ApiKey) -> i16 {
    served_range(key).map_or(key.valid_versions().max, |(_, max)| max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_versions_are_within_what_the_codec_knows() {
        for (key, min, max, req, resp) in codec_ranges() {
            assert!(
                min >= req.min && max <= req.max,
                "{key:?} request codec {req}"
            );
            assert!(
                min >= resp.min && max <= resp.max,
                "{key:?} response codec {resp}"
            );
        }
    }
}
