//! ApiVersions: advertises exactly the `SERVED` table, and the feature levels kop serves.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};

use super::{sb, Outcome, RequestContext, SERVED};
use crate::error::KafkaError;

/// Kafka's feature flags, as (name, highest level served, level in force). A level in force of
/// 0 means the feature is off; Kafka then leaves it out of the finalized list. kop serves the
/// KIP-848 consumer group protocol (`group.version` 1) and transactions with KIP-890's
/// server-side defence (`transaction.version` 2, as Kafka 4.x clusters run; producers of
/// older clients use version 1), KIP-932 share groups (`share.version` 1 in force and 2 supported, as a new Kafka 4.4 cluster reports it, which serves ShareFetch v2 at level 1 too: ShareGroupHeartbeat,
/// ShareGroupDescribe, ShareFetch and ShareAcknowledge up to v2 with KIP-1206's acquire modes
/// and KIP-1222's renewals, DescribeShareGroupOffsets v1 with KIP-1226's lag) and KIP-1071
/// Streams groups (`streams.version` 1: StreamsGroupHeartbeat, StreamsGroupDescribe). `metadata.version` and `kraft.version` describe a KRaft quorum,
/// which kop does not have.
pub const FEATURES: [(&str, i16, i16); 4] = [
    ("group.version", 1, 1),
    ("share.version", 2, 1),
    ("streams.version", 1, 1),
    ("transaction.version", 2, 2),
];

/// The features' levels never change while kop runs.
const FINALIZED_FEATURES_EPOCH: i64 = 0;

fn api_keys() -> Vec<ApiVersion> {
    let extra = super::streams_groups::SERVED_EXTRA;
    // Versions served by hand above what the crate decodes (ShareFetch / ShareAcknowledge v2,
    // DescribeShareGroupOffsets v1).
    let above = |key: i16, max: i16| {
        super::share_wire::SERVED_ABOVE_CODEC
            .iter()
            .find(|&&(k, _)| k == key)
            .map_or(max, |&(_, v)| v.max(max))
    };
    SERVED
        .iter()
        .map(|&(key, min, max)| (key as i16, min, above(key as i16, max)))
        .chain(extra.iter().copied())
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub async fn handle(
    _ctx: &RequestContext,
    header: &RequestHeader,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    // Before v4 a supported feature whose lowest level is 0 is left out (KAFKA-17011).
    let min_level_zero_ok = header.request_api_version >= 4;
    let supported = FEATURES
        .iter()
        .filter(|_| min_level_zero_ok)
        .map(|&(name, max, _)| {
            SupportedFeatureKey::default()
                .with_name(sb(name))
                .with_min_version(0)
                .with_max_version(max)
        })
        .collect();
    let finalized = FEATURES
        .iter()
        .filter(|&&(_, _, level)| level > 0)
        .map(|&(name, _, level)| {
            FinalizedFeatureKey::default()
                .with_name(sb(name))
                .with_min_version_level(level)
                .with_max_version_level(level)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_api_keys(api_keys())
        .with_supported_features(supported)
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(finalized)
}

/// A client asked for an ApiVersions version kop doesn't know: answer in v0 format with
/// UNSUPPORTED_VERSION and the list, so the client can retry with a version both know.
pub fn unsupported_version(correlation_id: i32) -> Outcome {
    let keys = api_keys();
    let mut body = BytesMut::new();
    body.put_i32(correlation_id);
    body.put_i16(KafkaError::UnsupportedVersion.code());
    body.put_i32(keys.len() as i32);
    for k in &keys {
        body.put_i16(k.api_key);
        body.put_i16(k.min_version);
        body.put_i16(k.max_version);
    }
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    Outcome::Respond(frame.freeze())
}
