//! Blocking backend calls from async code.

/// Runs a blocking backend call. On a tokio worker the worker hands its other tasks off first
/// (`block_in_place`), so a slow backend never stalls unrelated connections.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
