//! A global allocator that keeps a hostile request from aborting the process.
//!
//! The `kafka-protocol` decoder reserves `Vec::with_capacity(n)` for an array count `n` read
//! from the wire, before it checks that the bytes exist (an upstream issue; Kafka fixed the same
//! bug in KAFKA-14063). A 15-byte Metadata request claiming 2^31 topics asks for ~150 GB, the
//! system allocator refuses, and Rust aborts the whole server — `handle_alloc_error` is not a
//! catchable panic on stable Rust.
//!
//! This allocator serves requests of 1 GiB and more from `mmap(MAP_NORESERVE)`: address space
//! without a commitment of memory. The decoder then fails on the missing bytes as it should,
//! the mapping is returned untouched, and only the offending connection is closed. Pages that
//! are really written are real memory as usual. Everything smaller goes to the system allocator.
//! Register it in every binary that decodes requests: `#[global_allocator] static A: GuardedAlloc`.
#![allow(unsafe_code)] // a GlobalAlloc is unsafe by definition (the others: codec/segments.rs, a BufMut; storage/file/log.rs, sync_file_range)

use std::alloc::{GlobalAlloc, Layout, System};

pub struct GuardedAlloc;

/// Allocations at least this big are reserved lazily instead of committed.
const HUGE: usize = 1 << 30;
/// mmap returns page-aligned memory; larger alignments stay with the system allocator.
const PAGE: usize = 4096;

fn is_huge(layout: &Layout) -> bool {
    cfg!(unix) && layout.size() >= HUGE && layout.align() <= PAGE
}

#[cfg(unix)]
unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

#[cfg(unix)]
unsafe fn unmap(ptr: *mut u8, size: usize) {
    // SAFETY: `ptr`/`size` are exactly a mapping made by `map`.
    unsafe { libc::munmap(ptr.cast(), size) };
}

#[cfg(not(unix))]
unsafe fn map(_size: usize) -> *mut u8 {
    unreachable!("is_huge is false off unix")
}

#[cfg(not(unix))]
unsafe fn unmap(_ptr: *mut u8, _size: usize) {}

// SAFETY: huge blocks come from mmap (page-aligned, zero-filled, at least `size` bytes) and go
// back to munmap with the same size; every other block is the system allocator's.
unsafe impl GlobalAlloc for GuardedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            unsafe { map(layout.size()) } // anonymous mappings are zero-filled
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            unsafe { unmap(ptr, layout.size()) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservations_do_not_commit_memory() {
        // 64 GiB: more than the machine has, fine as long as it is never touched.
        let layout = Layout::from_size_align(64 << 30, 8).unwrap();
        let p = unsafe { GuardedAlloc.alloc(layout) };
        assert!(!p.is_null());
        unsafe {
            p.write(7);
            assert_eq!(p.read(), 7);
            GuardedAlloc.dealloc(p, layout);
        }
    }
}
