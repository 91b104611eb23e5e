//! Request memory: a pool of bytes that frames reserve as their bytes arrive.
//!
//! A frame reserves memory before it allocates it, and only for bytes the client has sent
//! (its buffer grows at most to twice what has arrived): a size prefix alone holds nothing, so
//! a client cannot pin memory it does not send. What happens when the pool is empty is the
//! pool's choice: an authenticated connection waits (it is muted: it reads nothing more until
//! memory is given back), an unauthenticated one is closed.
//!
//! Waiting is not first come, first served: a frame that finds too little memory waits until
//! some is given back and tries again, while smaller frames that fit go ahead. A big frame
//! waiting at the head of a queue would otherwise stop every other client (issue 12).

use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// What a connection does when the pool cannot give it the memory its frame needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenExhausted {
    /// Wait for memory (bounded by the caller's stall timeout).
    Wait,
    /// Fail at once: the connection is closed.
    Fail,
}

/// A pool of request memory (permits = bytes).
#[derive(Clone)]
pub struct MemoryPool {
    permits: Arc<Semaphore>,
    /// Woken whenever a reservation gives memory back.
    released: Arc<Notify>,
    capacity: usize,
    /// Bytes of each frame that need no permits: what every connection of this pool may hold
    /// anyway (bounded by the number of such connections).
    free_per_frame: usize,
    when_exhausted: WhenExhausted,
}

impl MemoryPool {
    pub fn new(capacity: usize, free_per_frame: usize, when_exhausted: WhenExhausted) -> Self {
        let capacity = capacity.min(Semaphore::MAX_PERMITS);
        MemoryPool {
            permits: Arc::new(Semaphore::new(capacity)),
            released: Arc::new(Notify::new()),
            capacity,
            free_per_frame,
            when_exhausted,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes currently reserved by frames.
    pub fn in_use(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    pub fn when_exhausted(&self) -> WhenExhausted {
        self.when_exhausted
    }

    /// An empty reservation of one frame in this pool.
    pub fn reservation(&self) -> Reservation {
        Reservation {
            pool: self.clone(),
            bytes: 0,
            permit: None,
        }
    }
}

/// The memory one frame holds; given back when dropped.
pub struct Reservation {
    pool: MemoryPool,
    bytes: usize,
    permit: Option<OwnedSemaphorePermit>,
}

/// The pool had no memory (and was not to be waited for).
#[derive(Debug)]
pub struct Exhausted;

impl Reservation {
    /// Bytes of the frame this reservation covers.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Grows the reservation to `bytes`, waiting or failing as the pool says. A cancelled
    /// wait reserves nothing (the reservation stays as it was).
    pub async fn grow_to(&mut self, bytes: usize) -> Result<(), Exhausted> {
        let free = self.pool.free_per_frame;
        let more = bytes
            .saturating_sub(free)
            .saturating_sub(self.bytes.saturating_sub(free));
        if more > 0 {
            let more = u32::try_from(more).map_err(|_| Exhausted)?;
            if more as usize > self.pool.capacity {
                return Err(Exhausted);
            }
            let permit = loop {
                // Listen before trying, so a release between the two is not missed.
                let released = self.pool.released.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                match self.pool.permits.clone().try_acquire_many_owned(more) {
                    Ok(permit) => break permit,
                    Err(_) if self.pool.when_exhausted == WhenExhausted::Wait => released.await,
                    Err(_) => return Err(Exhausted),
                }
            };
            match &mut self.permit {
                Some(held) => held.merge(permit),
                None => self.permit = Some(permit),
            }
        }
        self.bytes = self.bytes.max(bytes);
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.permit.take().is_some() {
            self.pool.released.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reserves_beyond_the_free_part_and_gives_back_on_drop() {
        let pool = MemoryPool::new(100, 10, WhenExhausted::Fail);
        let mut r = pool.reservation();
        r.grow_to(8).await.unwrap();
        assert_eq!(
            pool.in_use(),
            0,
            "the free part of a frame takes no permits"
        );
        r.grow_to(60).await.unwrap();
        assert_eq!(pool.in_use(), 50);
        let mut other = pool.reservation();
        assert!(other.grow_to(70).await.is_err(), "60 more do not fit in 50");
        assert_eq!(pool.in_use(), 50, "a failed growth reserves nothing");
        drop(r);
        assert_eq!(pool.in_use(), 0);
        other.grow_to(70).await.unwrap();
        assert_eq!(pool.in_use(), 60);
    }

    #[tokio::test]
    async fn a_waiting_pool_waits_until_memory_is_given_back() {
        let pool = MemoryPool::new(100, 0, WhenExhausted::Wait);
        let mut big = pool.reservation();
        big.grow_to(90).await.unwrap();
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut r = pool.reservation();
                r.grow_to(20).await.unwrap();
                r.bytes()
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        // A small frame that fits goes ahead of the waiting bigger one.
        let mut small = pool.reservation();
        small.grow_to(10).await.unwrap();
        assert!(!waiter.is_finished());
        drop(small);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "10 free bytes are not enough for 20");
        drop(big);
        assert_eq!(waiter.await.unwrap(), 20);
    }
}
