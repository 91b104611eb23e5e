//! The group-log seam: per group shard, a log of opaque records (committed offsets and group
//! metadata, encoded by `group::store`), replayed on start and now and then replaced by what is
//! live (compaction) — the role Kafka's compacted `__consumer_offsets` topic plays.
//!
//! Implemented by `file` (`groups/groups.log`, framed and checksummed), `memory` (keeps
//! nothing) and `remote` (Pulsar). Local storage has one shard; shared storage has
//! `remote::GROUP_SHARDS`, each written by the instance coordinating it.

use std::io;

pub trait GroupLog: Send + Sync {
    /// Every record, oldest first. On shared storage this takes the shard over: from now on
    /// only this process writes it.
    fn load(&self) -> io::Result<Vec<Vec<u8>>>;
    /// Appends records, durably against a process crash when it returns.
    fn append(&self, records: Vec<Vec<u8>>) -> io::Result<()>;
    /// Replaces the whole log with `live` (atomically: a crash leaves the old or the new log).
    fn rewrite(&self, live: Vec<Vec<u8>>) -> io::Result<()>;
    /// Makes appended records durable (fsync) where appends are not already.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    /// Stops writing: another kop instance coordinates the shard now (`load` takes it over
    /// again).
    fn release(&self) -> io::Result<()> {
        Ok(())
    }
}
