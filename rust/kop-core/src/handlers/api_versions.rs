//! ApiVersions: advertises exactly the `SERVED` table.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};

use super::{Outcome, RequestContext, SERVED};
use crate::error::KafkaError;

fn api_keys() -> Vec<ApiVersion> {
    SERVED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub async fn handle(
    _ctx: &RequestContext,
    _header: &RequestHeader,
    _req: ApiVersionsRequest,
) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_keys())
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
