//! Responses encoded without copying their record batches: the encoder's output is a list of
//! segments in which each large records field is the very `Bytes` the log returned (a slice of
//! a segment file's read, or of the Pulsar tail cache), between the encoded fields around it.
//! The connection writes the segments with one vectored write.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

/// Records fields shorter than this are copied (a segment of its own costs more).
pub const MIN_SHARED_BYTES: usize = 4096;

/// A `ByteBufMut` that keeps the listed `Bytes` as segments of their own when the encoder
/// writes them (found by address: the encoder writes a records field with one `put_slice` of
/// the field's bytes), and copies everything else.
pub struct SegmentedBuf {
    done: Vec<Bytes>,
    current: BytesMut,
    /// The large fields, in the order the encoder writes them.
    shared: Vec<Bytes>,
    next_shared: usize,
    written_before_current: usize,
}

impl SegmentedBuf {
    pub fn new(capacity: usize, shared: Vec<Bytes>) -> SegmentedBuf {
        SegmentedBuf {
            done: Vec::with_capacity(2 * shared.len() + 1),
            current: BytesMut::with_capacity(capacity),
            shared,
            next_shared: 0,
            written_before_current: 0,
        }
    }

    pub fn into_segments(mut self) -> Vec<Bytes> {
        if !self.current.is_empty() {
            self.done.push(self.current.freeze());
        }
        self.done
    }

    /// The listed field `src` is, if it is the next one (or any later one).
    fn shared_field(&mut self, src: &[u8]) -> Option<Bytes> {
        let same = |b: &Bytes| b.as_ptr() == src.as_ptr() && b.len() == src.len();
        let found = self.shared[self.next_shared..].iter().position(same)?;
        self.next_shared += found + 1;
        Some(self.shared[self.next_shared - 1].clone())
    }
}

// `BufMut` is an unsafe trait by definition (as `GlobalAlloc` in alloc_guard.rs).
// SAFETY: every method forwards to `current` (a BytesMut), whose contract it keeps.
#[allow(unsafe_code)]
unsafe impl BufMut for SegmentedBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut`, which is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if src.len() >= MIN_SHARED_BYTES {
            if let Some(field) = self.shared_field(src) {
                let before = std::mem::take(&mut self.current);
                self.written_before_current += before.len() + field.len();
                if !before.is_empty() {
                    self.done.push(before.freeze());
                }
                self.done.push(field);
                return;
            }
        }
        self.current.extend_from_slice(src);
    }
}

impl ByteBufMut for SegmentedBuf {
    fn offset(&self) -> usize {
        self.written_before_current + self.current.len()
    }

    // Gaps (written later) are used by record-batch encoding, never by a response message;
    // they work within the bytes written since the last shared field.
    fn seek(&mut self, offset: usize) {
        let local = offset.saturating_sub(self.written_before_current);
        self.current.resize(local, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let start = r.start.saturating_sub(self.written_before_current);
        let end = r.end.saturating_sub(self.written_before_current);
        let len = self.current.len();
        &mut self.current[start.min(len)..end.min(len)]
    }
}

/// Encodes a response frame (size, header, body) as segments, the `shared` fields of the
/// body (its large records fields) left uncopied.
pub fn encode_response_segments<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
    shared: Vec<Bytes>,
) -> anyhow::Result<Vec<Bytes>> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api_key.response_header_version(version);
    let size = header.compute_size(header_version)? + body.compute_size(version)?;
    let copied = size - shared.iter().map(Bytes::len).sum::<usize>().min(size);
    let mut buf = SegmentedBuf::new(4 + copied.min(64 * 1024), shared);
    buf.put_i32(size as i32);
    header.encode(&mut buf, header_version)?;
    body.encode(&mut buf, version)?;
    Ok(buf.into_segments())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::frame::encode_response;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::FetchResponse;

    fn response(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_records(Some(r.clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(kafka_protocol::messages::TopicName(
                kafka_protocol::protocol::StrBytes::from_static_str("t"),
            ))
            .with_partitions(partitions)])
    }

    #[test]
    fn segments_are_the_copying_encoding_and_share_the_large_fields() {
        let big = Bytes::from(vec![7u8; 10_000]);
        let small = Bytes::from(vec![9u8; 100]);
        let other = Bytes::from(vec![5u8; 5_000]);
        let resp = response(&[big.clone(), small.clone(), other.clone()]);
        for version in [4, 11, 12, 16] {
            let whole = encode_response(ApiKey::Fetch, version, 42, &resp).unwrap();
            let shared = vec![big.clone(), small.clone(), other.clone()];
            let parts =
                encode_response_segments(ApiKey::Fetch, version, 42, &resp, shared).unwrap();
            let joined: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
            assert_eq!(joined, whole.to_vec(), "v{version}");
            let uncopied = |f: &Bytes| parts.iter().any(|p| p.as_ptr() == f.as_ptr());
            assert!(
                uncopied(&big) && uncopied(&other),
                "large fields are shared"
            );
            assert!(!uncopied(&small), "a small field is copied");
        }
    }
}
