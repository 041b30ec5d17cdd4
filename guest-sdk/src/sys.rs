//! The one place that touches the module interface: on `wasm32` the `zkw` imports and the input
//! buffer behind `zkw_alloc`; on every other target the same functions route to the in-memory
//! mock host in [`crate::testing`], so recipes unit-test natively with `cargo test`. Everything
//! above this module passes encoded records (see [`crate::abi`]) and never sees a pointer.
//!
//! Each host call returns `Ok(bytes)` (the result slot, copied out) or `Err(code)` (a negative
//! ZooKeeper error code), exactly the contract of docs/recipes.md.

#[cfg(target_arch = "wasm32")]
pub use wasm::{alloc, take_input};
#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::{children, get, log, set_result, write};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::host::{children, get, log, set_result, write};

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod wasm {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The largest run input `zkw_alloc` hands out (bytes). Every ABI field is at most 1 MiB, but an
    /// `Event` for a session close lists all its ephemerals; the recipe's memory cap is the real
    /// bound, this one only refuses lengths no honest host sends.
    pub const INPUT_BYTES_MAX: usize = 64 * 1024 * 1024;

    #[link(wasm_import_module = "zkw")]
    extern "C" {
        #[link_name = "get"]
        fn zkw_get(path_ptr: *const u8, path_len: usize) -> i32;
        #[link_name = "children"]
        fn zkw_children(path_ptr: *const u8, path_len: usize) -> i32;
        #[link_name = "read_result"]
        fn zkw_read_result(dst_ptr: *mut u8);
        #[link_name = "write"]
        fn zkw_write(op_ptr: *const u8, op_len: usize) -> i32;
        #[link_name = "set_result"]
        fn zkw_set_result(ptr: *const u8, len: usize);
        #[link_name = "log"]
        fn zkw_log(level: i32, ptr: *const u8, len: usize);
    }

    /// Copies the host's result slot out after a call that returned `len` (or passes on the
    /// negative code).
    fn result(len: i32) -> Result<Vec<u8>, i32> {
        let len = usize::try_from(len).map_err(|_| len)?;
        let mut bytes = vec![0u8; len];
        // SAFETY: `bytes` is a live, writable buffer of exactly `len` bytes, and the host copies
        // exactly the `len` bytes it just reported for the last call into it.
        unsafe { zkw_read_result(bytes.as_mut_ptr()) };
        Ok(bytes)
    }

    pub(crate) fn get(path: &str) -> Result<Vec<u8>, i32> {
        // SAFETY: the host only reads `path.len()` bytes from a live `&str`.
        result(unsafe { zkw_get(path.as_ptr(), path.len()) })
    }

    pub(crate) fn children(path: &str) -> Result<Vec<u8>, i32> {
        // SAFETY: as for `get`: a read-only borrow of `path.len()` bytes.
        result(unsafe { zkw_children(path.as_ptr(), path.len()) })
    }

    pub(crate) fn write(op: &[u8]) -> Result<Vec<u8>, i32> {
        // SAFETY: the host only reads `op.len()` bytes from a live slice.
        result(unsafe { zkw_write(op.as_ptr(), op.len()) })
    }

    pub(crate) fn set_result(bytes: &[u8]) {
        // SAFETY: the host copies `bytes.len()` bytes out of a live slice.
        unsafe { zkw_set_result(bytes.as_ptr(), bytes.len()) }
    }

    pub(crate) fn log(level: i32, message: &str) {
        // SAFETY: the host copies `message.len()` bytes out of a live `&str`.
        unsafe { zkw_log(level, message.as_ptr(), message.len()) }
    }

    /// The buffer the last `zkw_alloc` handed out, so [`take_input`] accepts only that one
    /// (0 = none outstanding). A run is single-threaded; atomics are just safe statics here.
    static INPUT_PTR: AtomicUsize = AtomicUsize::new(0);
    static INPUT_LEN: AtomicUsize = AtomicUsize::new(0);

    /// `zkw_alloc`: a buffer of `len` bytes for the host to fill; 0 when `len` is negative or
    /// above [`INPUT_BYTES_MAX`] (allocation failure itself traps: the run fails).
    pub fn alloc(len: i32) -> i32 {
        let Ok(len) = usize::try_from(len) else {
            return 0;
        };
        if len > INPUT_BYTES_MAX {
            return 0;
        }
        let buffer: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let ptr = Box::into_raw(buffer) as *mut u8 as usize;
        // A previous, never-consumed input is leaked: the instance lives for one run only.
        INPUT_PTR.store(ptr, Ordering::Relaxed);
        INPUT_LEN.store(len, Ordering::Relaxed);
        // wasm32 addresses fit in 32 bits; the host reads the value as u32.
        ptr as i32
    }

    /// Takes back the buffer `zkw_alloc` handed out, now holding the host's input; `None` when
    /// (`ptr`, `len`) is not exactly that buffer, so a confused host cannot make us read
    /// arbitrary memory.
    pub fn take_input(ptr: i32, len: i32) -> Option<Box<[u8]>> {
        let ptr = ptr as u32 as usize;
        let len = usize::try_from(len).ok()?;
        if ptr == 0
            || ptr != INPUT_PTR.load(Ordering::Relaxed)
            || len != INPUT_LEN.load(Ordering::Relaxed)
        {
            return None;
        }
        INPUT_PTR.store(0, Ordering::Relaxed);
        INPUT_LEN.store(0, Ordering::Relaxed);
        let slice = std::ptr::slice_from_raw_parts_mut(ptr as *mut u8, len);
        // SAFETY: (ptr, len) is exactly the `Box<[u8]>` that `alloc` leaked with
        // `Box::into_raw` (checked above), and clearing INPUT_PTR makes this the only
        // reconstruction of it. The host wrote its bytes between the two calls, while no Rust
        // reference to the buffer existed.
        Some(unsafe { Box::from_raw(slice) })
    }
}
