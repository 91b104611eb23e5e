use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::ReadBuf;

use super::*;
use crate::codec::frame::MIN_REQUEST;

const RULES: FrameRules = FrameRules {
    min_size: MIN_REQUEST,
    max_size: 1 << 22,
    idle: Duration::from_secs(5),
    stall: Duration::from_secs(5),
};

/// A stream that hands out its bytes in the given pieces, one read each; then the end.
struct Pieces(VecDeque<Vec<u8>>);

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(mut piece) = self.0.pop_front() {
            let n = piece.len().min(out.remaining());
            out.put_slice(&piece[..n]);
            if n < piece.len() {
                self.0.push_front(piece.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn frame_of(size: usize, fill: u8) -> Vec<u8> {
    let mut out = (size as i32).to_be_bytes().to_vec();
    out.extend(std::iter::repeat_n(fill, size));
    out
}

fn pool() -> MemoryPool {
    MemoryPool::new(64 << 20, 0, WhenExhausted::Fail)
}

/// Reads every frame of a stream sent in `pieces` of `stream`'s bytes.
async fn frames_of(stream: Vec<u8>, piece: usize) -> Vec<Bytes> {
    let pieces = stream.chunks(piece).map(<[u8]>::to_vec).collect();
    let mut reader = FrameReader::new(Pieces(pieces));
    let pool = pool();
    let mut out = Vec::new();
    while let Some((frame, memory)) = reader.read_frame(&RULES, &pool).await.unwrap() {
        assert_eq!(memory.bytes(), frame.len(), "a frame reserves its bytes");
        out.push(frame);
    }
    out
}

#[tokio::test]
async fn frames_of_every_size_come_out_whole_however_the_bytes_arrive() {
    let sizes = [
        8,
        100,
        SPLIT_MIN - 1,
        SPLIT_MIN,
        40_000,
        READ_AHEAD - 4,
        READ_AHEAD,
        300_000,
    ];
    let mut stream = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        stream.extend(frame_of(size, i as u8));
    }
    for piece in [1, 3, 1000, 4096, 65_536, 70_000, stream.len()] {
        let frames = frames_of(stream.clone(), piece).await;
        assert_eq!(frames.len(), sizes.len(), "pieces of {piece}");
        for (i, (frame, &size)) in frames.iter().zip(&sizes).enumerate() {
            assert_eq!(frame.len(), size, "pieces of {piece}");
            assert!(frame.iter().all(|&b| b == i as u8), "pieces of {piece}");
        }
    }
}

/// A reader whose read buffer already holds `bytes` (as if one read brought them all).
fn holding(bytes: &[u8]) -> (FrameReader<Pieces>, usize) {
    let mut buf = BytesMut::with_capacity(READ_AHEAD);
    buf.extend_from_slice(bytes);
    let start = buf.as_ptr() as usize;
    let reader = FrameReader {
        io: Pieces(VecDeque::new()),
        buf,
    };
    (reader, start)
}

#[tokio::test]
async fn a_frame_of_a_quarter_of_the_buffer_is_split_off_it_and_owns_its_allocation() {
    let mut stream = frame_of(20_000, 1);
    stream.extend(frame_of(100, 2));
    stream.extend(frame_of(SPLIT_MIN, 3));
    let (mut reader, start) = holding(&stream);
    let pool = pool();
    let (first, _m1) = reader.read_frame(&RULES, &pool).await.unwrap().unwrap();
    assert_eq!(first.as_ptr() as usize, start + 4, "not copied");
    // The bytes after it moved to a new read buffer: nothing else holds its allocation, so a
    // produce can reclaim it to patch its records in place.
    let owned = first
        .try_into_mut()
        .expect("the frame's allocation is its own");
    assert!(owned.iter().all(|&b| b == 1) && owned.len() == 20_000);

    let (small, _m2) = reader.read_frame(&RULES, &pool).await.unwrap().unwrap();
    assert_eq!(&small[..], &[2u8; 100][..]);
    let small_at = small.as_ptr() as usize;
    assert!(
        !(start..start + READ_AHEAD).contains(&small_at),
        "a small frame is copied out"
    );
    let (third, _m3) = reader.read_frame(&RULES, &pool).await.unwrap().unwrap();
    assert!(third.iter().all(|&b| b == 3) && third.len() == SPLIT_MIN);
    assert!(third.try_into_mut().is_ok());
    assert!(reader.read_frame(&RULES, &pool).await.unwrap().is_none());
}

#[tokio::test]
async fn a_split_frame_stays_shared_when_more_than_it_follows() {
    // Moving the bytes after the frame would copy more than copying the frame: neither is
    // done here; the frame shares the buffer (a produce then copies its records).
    let mut stream = frame_of(SPLIT_MIN, 1);
    stream.extend(frame_of(SPLIT_MIN + 100, 2));
    let (mut reader, start) = holding(&stream);
    let pool = pool();
    let (first, _m1) = reader.read_frame(&RULES, &pool).await.unwrap().unwrap();
    assert_eq!(first.as_ptr() as usize, start + 4);
    let (second, _m2) = reader.read_frame(&RULES, &pool).await.unwrap().unwrap();
    assert_eq!(second.as_ptr() as usize, start + 8 + SPLIT_MIN);
    let first = first
        .try_into_mut()
        .expect_err("shared with the second frame");
    drop(second);
    assert!(
        first.try_into_mut().is_ok(),
        "its own once the other is gone"
    );
}

#[tokio::test]
async fn a_size_prefix_alone_reserves_nothing() {
    let pool = MemoryPool::new(1 << 20, 0, WhenExhausted::Fail);
    let rules = FrameRules {
        stall: Duration::from_millis(100),
        ..RULES
    };
    for size in [1000i32, 1_000_000] {
        // The client sends the prefix and then nothing: the reader stalls, holding nothing.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(server);
        tokio::io::AsyncWriteExt::write_all(&mut client, &size.to_be_bytes())
            .await
            .unwrap();
        let read = reader.read_frame(&rules, &pool);
        tokio::pin!(read);
        let waited = tokio::time::timeout(Duration::from_millis(50), &mut read).await;
        assert!(waited.is_err(), "still waiting for the body");
        assert_eq!(pool.in_use(), 0, "a {size}-byte prefix alone holds nothing");
        assert!(matches!(read.await, Err(FrameError::Stalled { .. })));
    }
}

#[tokio::test]
async fn a_large_frame_reserves_at_most_twice_what_arrived() {
    let pool = MemoryPool::new(4 << 20, 0, WhenExhausted::Fail);
    let rules = FrameRules {
        stall: Duration::from_millis(200),
        ..RULES
    };
    let (mut client, server) = tokio::io::duplex(1 << 20);
    let mut stream = frame_of(2_000_000, 3);
    stream.truncate(4 + 300_000);
    tokio::io::AsyncWriteExt::write_all(&mut client, &stream)
        .await
        .unwrap();
    let mut reader = FrameReader::new(server);
    let read = reader.read_frame(&rules, &pool);
    tokio::pin!(read);
    assert!(tokio::time::timeout(Duration::from_millis(50), &mut read)
        .await
        .is_err());
    let held = pool.in_use();
    assert!(
        (300_000..=600_000).contains(&held),
        "300 kB of a 2 MB frame arrived; {held} bytes reserved"
    );
    assert!(matches!(read.await, Err(FrameError::Stalled { .. })));
}

#[tokio::test]
async fn sizes_out_of_bounds_are_refused_before_anything_is_read() {
    let pool = pool();
    for size in [-1i32, 0, 7, (1 << 22) + 1] {
        let mut reader = FrameReader::new(Pieces(VecDeque::from([size.to_be_bytes().to_vec()])));
        let read = reader.read_frame(&RULES, &pool).await;
        assert!(
            matches!(
                read,
                Err(FrameError::BadSize(_) | FrameError::TooLarge { .. })
            ),
            "{size}"
        );
        assert_eq!(pool.in_use(), 0);
    }
}

#[tokio::test]
async fn a_stream_that_ends_mid_frame_is_truncated_and_between_frames_is_clean() {
    let pool = pool();
    let mut cut = frame_of(50_000, 1);
    cut.truncate(30_000);
    let mut reader = FrameReader::new(Pieces(VecDeque::from([cut])));
    assert!(matches!(
        reader.read_frame(&RULES, &pool).await,
        Err(FrameError::Truncated)
    ));
    let mut reader = FrameReader::new(Pieces(VecDeque::from([frame_of(10, 1)])));
    assert!(reader.read_frame(&RULES, &pool).await.unwrap().is_some());
    assert!(reader.read_frame(&RULES, &pool).await.unwrap().is_none());
}
