//! kop-core's integration tests, in one test binary: every binary is linked (with the release
//! profile's LTO) on its own, so one binary instead of nine saves most of `cargo test`'s time.
//! Each module is one concern; `common` is the small blocking client they share.

// As in every binary that decodes requests (kop-py's module): see alloc_guard.rs.
#[global_allocator]
static ALLOCATOR: kop_core::alloc_guard::GuardedAlloc = kop_core::alloc_guard::GuardedAlloc;

mod common;

mod auth_hooks;
mod group_authz;
mod groups;
mod hostile_clients;
mod peers;
mod pipelining;
mod records_props;
mod security;
mod server;
