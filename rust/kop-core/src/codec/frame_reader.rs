//! Reads a connection's frames, splitting them off the read buffer without copying them.
//!
//! The connection reads into one buffer of `READ_AHEAD` bytes, so that many small requests
//! cost one system call. A frame that arrived whole in it is split off as `Bytes` sharing the
//! buffer's allocation (no copy) when it is at least a quarter of it; the buffer then moves on
//! to a new allocation, so the frame's allocation is its own and a produce can take its
//! records out in place (`handlers/produce.rs`). A smaller frame is copied into an exact
//! allocation, so it never holds more than 4x its size. A frame larger than the read buffer
//! gets a buffer of its own that the socket reads straight into.
//!
//! Memory (`memory.rs`): a frame reserves its bytes before it is handed out, or, for a frame
//! of its own buffer, as that buffer grows, which it does only for bytes that have arrived
//! (to at most twice them): a size prefix alone reserves nothing. The read buffer itself is
//! the connection's, like a socket buffer, and not counted.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::frame::{within, FrameError, FrameRules};
use super::memory::{MemoryPool, Reservation, WhenExhausted};

/// Bytes read from the socket at a time between frames.
pub const READ_AHEAD: usize = 64 * 1024;
/// Smallest frame split off the read buffer instead of copied (a quarter of it).
pub const SPLIT_MIN: usize = READ_AHEAD / 4;
/// Smallest buffer of a frame whose bytes are not all there yet.
const MIN_CHUNK: usize = 4096;

/// The frames of one connection.
pub struct FrameReader<R> {
    io: R,
    /// Bytes received and not yet handed out (the start of the next frames).
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: BytesMut::new(),
        }
    }

    /// Reads more bytes into the read buffer, at most `limit`; 0 at the end of the stream.
    /// A full buffer moves to a new allocation of `READ_AHEAD` first (copying what it holds,
    /// the start of one frame).
    async fn fill(&mut self, limit: usize) -> std::io::Result<usize> {
        if self.buf.capacity() == self.buf.len() {
            let mut fresh = BytesMut::with_capacity(READ_AHEAD.max(self.buf.len() * 2));
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        let room = (self.buf.capacity() - self.buf.len()).min(limit);
        self.io.read_buf(&mut (&mut self.buf).limit(room)).await
    }

    /// Reads one frame. `Ok(None)` is a clean close between frames. The reservation comes
    /// back with the frame and gives its memory back when dropped.
    ///
    /// Not cancel-safe: a frame cut short by a cancellation is lost.
    pub async fn read_frame(
        &mut self,
        rules: &FrameRules,
        pool: &MemoryPool,
    ) -> Result<Option<(Bytes, Reservation)>, FrameError> {
        if self.buf.is_empty() {
            match tokio::time::timeout(rules.idle, self.fill(READ_AHEAD)).await {
                Err(_) => return Err(FrameError::Idle),
                Ok(Ok(0)) => return Ok(None),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
        let stall = rules.stall;
        while self.buf.len() < 4 {
            let n = within(stall, self.fill(READ_AHEAD), stalled(0, 4, rules)).await?;
            if n == 0 {
                return Err(FrameError::Truncated);
            }
        }
        let size = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if size < rules.min_size {
            return Err(FrameError::BadSize(size));
        }
        if size > rules.max_size {
            return Err(FrameError::TooLarge {
                size,
                max: rules.max_size,
            });
        }
        let size = size as usize;
        if 4 + size > READ_AHEAD {
            return self.read_large(size, rules, pool).await.map(Some);
        }
        // Small enough for the read buffer: read until it is all there (reading ahead into
        // the next frames is fine), then reserve its memory and hand it out.
        while self.buf.len() < 4 + size {
            if self.buf.capacity() < 4 + size {
                // The buffer's allocation has no room left for the rest: move on.
                let mut fresh = BytesMut::with_capacity(READ_AHEAD);
                fresh.extend_from_slice(&self.buf);
                self.buf = fresh;
            }
            let received = self.buf.len() - 4;
            let n = within(stall, self.fill(READ_AHEAD), stalled(received, size, rules)).await?;
            if n == 0 {
                return Err(FrameError::Truncated);
            }
        }
        let mut reservation = pool.reservation();
        grow(&mut reservation, size, size, size, rules, pool).await?;
        self.buf.advance(4);
        let frame = if size >= SPLIT_MIN {
            let frame = self.buf.split_to(size).freeze();
            // The rest of the allocation still belongs to the read buffer: give it the
            // bytes it holds in a new one, unless that copies more than the frame has.
            if self.buf.is_empty() {
                self.buf = BytesMut::new();
            } else if self.buf.len() <= size {
                let mut fresh = BytesMut::with_capacity(READ_AHEAD);
                fresh.extend_from_slice(&self.buf);
                self.buf = fresh;
            }
            frame
        } else {
            let frame = Bytes::copy_from_slice(&self.buf[..size]);
            self.buf.advance(size);
            frame
        };
        Ok(Some((frame, reservation)))
    }

    /// A frame larger than the read buffer: a buffer of its own, reserved and grown as its
    /// bytes arrive (to at most twice what has arrived), read into straight from the socket.
    async fn read_large(
        &mut self,
        size: usize,
        rules: &FrameRules,
        pool: &MemoryPool,
    ) -> Result<(Bytes, Reservation), FrameError> {
        let stall = rules.stall;
        // A size prefix alone reserves nothing: wait for the first bytes of the body.
        while self.buf.len() == 4 {
            let n = within(stall, self.fill(size), stalled(0, size, rules)).await?;
            if n == 0 {
                return Err(FrameError::Truncated);
            }
        }
        self.buf.advance(4);
        let arrived = self.buf.len().min(size);
        let mut reservation = pool.reservation();
        let cap = size.min((2 * arrived).max(MIN_CHUNK));
        grow(&mut reservation, cap, arrived, size, rules, pool).await?;
        let mut frame = BytesMut::with_capacity(cap);
        frame.extend_from_slice(&self.buf[..arrived]);
        self.buf.advance(arrived);
        while frame.len() < size {
            let len = frame.len();
            if len == frame.capacity() {
                let cap = size.min(2 * len);
                grow(&mut reservation, cap, len, size, rules, pool).await?;
                frame.reserve(cap - len);
            }
            let room = frame.capacity().min(size) - len;
            let n = within(
                stall,
                self.io.read_buf(&mut (&mut frame).limit(room)),
                stalled(len, size, rules),
            )
            .await?;
            if n == 0 {
                return Err(FrameError::Truncated);
            }
        }
        Ok((frame.freeze(), reservation))
    }
}

fn stalled(received: usize, size: usize, rules: &FrameRules) -> impl FnOnce() -> FrameError {
    let ms = rules.stall.as_millis();
    move || FrameError::Stalled { received, size, ms }
}

/// Grows a frame's reservation to `bytes`, waiting (at most the stall timeout) or failing as
/// the pool says.
async fn grow(
    reservation: &mut Reservation,
    bytes: usize,
    received: usize,
    size: usize,
    rules: &FrameRules,
    pool: &MemoryPool,
) -> Result<(), FrameError> {
    let grown = match pool.when_exhausted() {
        WhenExhausted::Fail => reservation
            .grow_to(bytes)
            .await
            .map_err(|_| "this listener's memory for unauthenticated clients is in use"),
        WhenExhausted::Wait => {
            match tokio::time::timeout(rules.stall, reservation.grow_to(bytes)).await {
                Ok(r) => r.map_err(|_| "the pool is closed"),
                Err(_) => Err("waited frame_stall_timeout_ms for it"),
            }
        }
    };
    grown.map_err(|why| FrameError::NoMemory {
        received,
        size,
        why,
    })
}

#[cfg(test)]
#[path = "frame_reader_tests.rs"]
mod tests;
