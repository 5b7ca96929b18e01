//! The global allocator, which can wipe what is freed while secrets are
//! being read.
//!
//! The config's plaintext tokens and API keys pass through the TOML
//! parser, which copies them into buffers of its own and frees those
//! without clearing them; `zeroize` on our own copies cannot reach those.
//! So while the config is loaded and hashed ([`wiping`]), every block the
//! process frees (or moves when it grows) is overwritten with zeros first.
//! Outside that window the allocator is mimalloc with one relaxed load per
//! free and per resize.
//!
//! Binary only (beside `main`): the library's layers know nothing of it.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use zeroize::Zeroize;

/// mimalloc, wiping freed blocks while [`WIPE`] is set.
pub struct WipingAlloc(pub mimalloc::MiMalloc);

static WIPE: AtomicBool = AtomicBool::new(false);

/// Runs `f` with every freed block wiped.
pub fn wiping<R>(f: impl FnOnce() -> R) -> R {
    WIPE.store(true, Relaxed);
    let out = f();
    WIPE.store(false, Relaxed);
    out
}

/// Zeroes `size` bytes at `ptr` (volatile writes, which the compiler keeps).
///
/// # Safety
/// `ptr` must be valid for writes of `size` bytes.
unsafe fn wipe(ptr: *mut u8, size: usize) {
    // SAFETY: the caller's guarantee.
    unsafe { std::slice::from_raw_parts_mut(ptr, size) }.zeroize();
}

// SAFETY: every method hands the request to mimalloc unchanged; while
// wiping, a block is zeroed (it is still ours) before it is freed, and a
// resize is an allocation, a copy of the smaller size and such a free.
unsafe impl GlobalAlloc for WipingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WIPE.load(Relaxed) {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes.
            unsafe { wipe(ptr, layout.size()) };
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !WIPE.load(Relaxed) {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { self.0.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new_size` is valid for `layout.align()` (the caller's
        // guarantee), so is the layout; both blocks are live for the copy.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let new = self.0.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}
