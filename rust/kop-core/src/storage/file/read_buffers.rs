//! Buffers for fetch reads, used again once a response is written.
//!
//! A fetch reads up to `max.partition.fetch.bytes` (1 MiB by default) per partition into a
//! buffer of its own, which lives until the response is written. Freed, such a buffer goes
//! back to the allocator, and glibc's returns it to the kernel (a block this large is mapped
//! on its own, or it trims its heap once the free top passes its threshold), so the next fetch
//! faults in and zeroes the pages anew: measured, that was half of kop's CPU per record read
//! by a librdkafka consumer of 8 partitions (`bench/consume_shape.py`, docs/benchmarks.md).
//! Here buffers of at least [`MIN_POOLED`] bytes come back to a small pool instead, at most
//! [`MAX_POOLED_BYTES`] of them in all (the rest are freed as before).

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use parking_lot::Mutex;

/// The process's pool, shared by every file log in it.
pub static READ_BUFFERS: LazyLock<Arc<ReadBuffers>> = LazyLock::new(Default::default);

/// Reads shorter than this use a plain allocation (small blocks stay in the allocator's heap).
pub const MIN_POOLED: usize = 64 * 1024;

/// The pooled buffers' capacity, in all, kept while no fetch uses them: the reads of one
/// 8-partition fetch of 1 MiB per partition, twice.
pub const MAX_POOLED_BYTES: usize = 16 * 1024 * 1024;

/// Buffers waiting to be used again.
#[derive(Default)]
pub struct ReadBuffers {
    free: Mutex<Pool>,
}

#[derive(Default)]
struct Pool {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

impl ReadBuffers {
    /// An empty buffer with room for at least `len` bytes: a pooled one if one is large
    /// enough, else a new one.
    pub fn take(&self, len: usize) -> Vec<u8> {
        if len >= MIN_POOLED {
            let mut pool = self.free.lock();
            if let Some(i) = pool.buffers.iter().position(|b| b.capacity() >= len) {
                let buf = pool.buffers.swap_remove(i);
                pool.bytes -= buf.capacity();
                return buf;
            }
        }
        Vec::with_capacity(len)
    }

    /// `buf` as `Bytes` that give the buffer back to the pool when the last of them is dropped
    /// (a small one is simply freed then).
    pub fn share(self: &Arc<Self>, buf: Vec<u8>) -> Bytes {
        if buf.capacity() < MIN_POOLED {
            return Bytes::from(buf);
        }
        Bytes::from_owner(Pooled {
            buf,
            home: self.clone(),
        })
    }

    fn give_back(&self, mut buf: Vec<u8>) {
        let mut pool = self.free.lock();
        if pool.bytes + buf.capacity() <= MAX_POOLED_BYTES {
            buf.clear();
            pool.bytes += buf.capacity();
            pool.buffers.push(buf);
        }
    }

    #[cfg(test)]
    fn pooled_bytes(&self) -> usize {
        self.free.lock().bytes
    }
}

/// A buffer lent out as `Bytes`.
struct Pooled {
    buf: Vec<u8>,
    home: Arc<ReadBuffers>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_buffer_comes_back_once_its_bytes_are_dropped() {
        let pool = Arc::new(ReadBuffers::default());
        let mut buf = pool.take(1 << 20);
        buf.extend_from_slice(&[1u8; 1000]);
        let address = buf.as_ptr();
        let bytes = pool.share(buf);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.pooled_bytes(), 0, "still lent out through the slice");
        assert_eq!(&slice[..], &[1u8; 10]);
        drop(slice);
        assert_eq!(pool.pooled_bytes(), 1 << 20);
        // The next read of that size or less gets the same memory, empty.
        let again = pool.take(300_000);
        assert_eq!((again.as_ptr(), again.len()), (address, 0));
        assert_eq!(pool.pooled_bytes(), 0);
        // Too large for any pooled buffer: a new one.
        drop(pool.share(again));
        assert!(pool.take(2 << 20).capacity() >= 2 << 20);
        assert_eq!(pool.pooled_bytes(), 1 << 20);
    }

    #[test]
    fn small_buffers_are_not_pooled_and_the_pool_is_bounded() {
        let pool = Arc::new(ReadBuffers::default());
        drop(pool.share(pool.take(1000)));
        assert_eq!(pool.pooled_bytes(), 0);
        let lent: Vec<Bytes> = (0..20).map(|_| pool.share(pool.take(1 << 20))).collect();
        drop(lent);
        assert_eq!(pool.pooled_bytes(), MAX_POOLED_BYTES);
    }
}
