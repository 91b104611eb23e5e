//! Length-prefixed Kafka frames, with the size checked before anything is allocated.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative or too small for a request header")]
    BadSize(i32),
    #[error("frame size {size} exceeds max_request_bytes {max}")]
    TooLarge { size: i32, max: i32 },
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("malformed request header: {0}")]
    BadHeader(String),
    #[error("connection closed mid-frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Smallest request: api key, api version, correlation id.
const MIN_REQUEST: i32 = 8;

/// Reads one frame. `Ok(None)` is a clean close between frames. The frame's bytes are taken
/// from `budget` (permits = bytes) before they are allocated, and given back when the returned
/// permit is dropped: all connections together never hold more request memory than the budget.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: i32,
    budget: &Arc<Semaphore>,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, FrameError> {
    let mut size_buf = [0u8; 4];
    match reader.read_exact(&mut size_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size_buf);
    if size < MIN_REQUEST {
        return Err(FrameError::BadSize(size));
    }
    if size > max_size {
        return Err(FrameError::TooLarge {
            size,
            max: max_size,
        });
    }
    let permit = budget
        .clone()
        .acquire_many_owned(size as u32)
        .await
        .map_err(|_| FrameError::Io(std::io::ErrorKind::BrokenPipe.into()))?;
    // Read straight into uninitialised capacity (no zeroing), never past this frame.
    let size = size as usize;
    let mut buf = BytesMut::with_capacity(size);
    while buf.len() < size {
        let want = size - buf.len();
        if reader.read_buf(&mut (&mut buf).limit(want)).await? == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some((buf.freeze(), permit)))
}

/// A decoded request header and the body bytes that follow it.
pub struct RequestFrame {
    pub api_key: ApiKey,
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
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApiKey(raw_key))?;
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
        header,
        body: frame,
    })
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
