//! Length-prefixed Kafka frames: how they may be read (`frame_reader.rs` reads them: the size
//! is checked before anything is allocated, and memory is reserved as the bytes arrive), and
//! request headers decoded from them.

use std::future::Future;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative or too small for a request header")]
    BadSize(i32),
    #[error("frame size {size} exceeds the limit of {max} bytes")]
    TooLarge { size: i32, max: i32 },
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("malformed request header: {0}")]
    BadHeader(String),
    #[error("connection closed mid-frame")]
    Truncated,
    #[error("no frame began within connections_max_idle_ms")]
    Idle,
    #[error("stalled mid-frame: {received} of {size} bytes arrived, then nothing for {ms} ms")]
    Stalled {
        received: usize,
        size: usize,
        ms: u128,
    },
    #[error("no request memory for a {size}-byte frame ({received} bytes arrived; {why})")]
    NoMemory {
        received: usize,
        size: usize,
        why: &'static str,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Smallest request: api key, api version, correlation id.
pub const MIN_REQUEST: i32 = 8;

/// How a frame is read: its size bounds and how long the client may take.
#[derive(Debug, Clone, Copy)]
pub struct FrameRules {
    /// Smallest acceptable size: `MIN_REQUEST`, or 0 for raw SASL tokens.
    pub min_size: i32,
    pub max_size: i32,
    /// How long to wait for a frame to begin (`connections_max_idle_ms`).
    pub idle: Duration,
    /// How long a frame that has begun may make no progress, for want of bytes from the
    /// client or of request memory (`frame_stall_timeout_ms`).
    pub stall: Duration,
}

/// `what`, unless it makes no progress within `limit`.
pub(super) async fn within<T>(
    limit: Duration,
    what: impl Future<Output = std::io::Result<T>>,
    stalled: impl FnOnce() -> FrameError,
) -> Result<T, FrameError> {
    match tokio::time::timeout(limit, what).await {
        Ok(r) => r.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
            _ => e.into(),
        }),
        Err(_) => Err(stalled()),
    }
}

/// A decoded request header and the body bytes that follow it.
pub struct RequestFrame {
    /// For an API the `kafka-protocol` crate has no key for (`extra_api`), its flexible
    /// KIP-848 sibling, which has the same header versions.
    pub api_key: ApiKey,
    /// The wire key of such an API (None for the rest).
    pub extra_key: Option<i16>,
    pub header: RequestHeader,
    pub body: Bytes,
}

/// Decodes the request header. `header_version_for` lets the caller pick the header version
/// for API versions it does not serve (so it can still answer them).
pub fn decode_header(
    mut frame: Bytes,
    api_key_max: impl Fn(ApiKey) -> i16,
) -> Result<RequestFrame, FrameError> {
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let extra_key = extra_api(raw_key).map(|_| raw_key);
    let api_key = match extra_api(raw_key) {
        Some(sibling) => sibling,
        None => ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApiKey(raw_key))?,
    };
    // For versions above what we serve, parse the header as our highest version would have it.
    let known = api_key.valid_versions();
    let header_of = version.clamp(
        known.min,
        known.max.min(api_key_max(api_key)).max(known.min),
    );
    let header_version = api_key.request_header_version(header_of);
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| FrameError::BadHeader(e.to_string()))?;
    Ok(RequestFrame {
        api_key,
        extra_key,
        header,
        body: frame,
    })
}

/// The APIs kop serves that the `kafka-protocol` crate does not know (KIP-1071's
/// StreamsGroupHeartbeat 88 and StreamsGroupDescribe 89), with the crate's API whose request
/// and response headers they share (both flexible from v0).
pub fn extra_api(raw_key: i16) -> Option<ApiKey> {
    match raw_key {
        88 => Some(ApiKey::ConsumerGroupHeartbeat),
        89 => Some(ApiKey::ConsumerGroupDescribe),
        _ => None,
    }
}

/// Encodes a response frame: size, response header, body.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> anyhow::Result<Bytes> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf.freeze())
}
