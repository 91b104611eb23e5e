//! The local-log backend (`file://DIR`).
//!
//! Layout under DIR (documents keep the file names they had before documents were a seam, so
//! existing data directories open unchanged):
//! - `kop.lock`                    held while a server uses the directory
//! - `security.json`               the `security` document
//! - `producer-ids`                the `producer-ids` document
//! - `topics/<topic>.json`         the `topic/<topic>` documents
//! - `docs/<name>`                 any other document (`docs/cluster-id`; older directories
//!   have the id in `cluster.json`, read once and copied there on open)
//! - `logs/<topic>-<p>/<base>.log` segment files of raw batches, named by their base offset
//! - `groups/groups.log`           group records (one shard)
//! - `transactions/txn.log`        transaction state records (one shard)
//!
//! Appends go straight to the segment file; once `write` returns the bytes are in the OS page
//! cache, so a killed process loses nothing it acknowledged. fsync is the broker's policy.

mod documents;
mod group_log;
mod log;
mod read_buffers;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

pub use documents::FileDocuments;
pub use group_log::FileGroupLog;

use super::members::SoleMember;
use super::metadata::Metadata;
use super::Storage;

/// Opens (creating if needed) a data directory and locks it against a second server.
/// `sync_each_append`: fsync every group-record append (`fsync = "always"`).
pub(super) fn open(root: &Path, sync_each_append: bool) -> io::Result<Storage> {
    fs::create_dir_all(root)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join("kop.lock"))?;
    lock.try_lock().map_err(|_| {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "data directory {} is in use by another kop process",
                root.display()
            ),
        )
    })?;
    let documents = FileDocuments::open(root)?;
    let group_log = FileGroupLog::open(&root.join("groups"), sync_each_append)?;
    let txn_log =
        FileGroupLog::open_named(&root.join("transactions"), "txn.log", sync_each_append)?;
    Ok(Storage {
        metadata: Arc::new(Metadata::new(Arc::new(documents))),
        logs: Arc::new(log::FileLogs::open(&root.join("logs"))?),
        group_logs: vec![Arc::new(group_log)],
        txn_logs: vec![Arc::new(txn_log)],
        members: Arc::new(SoleMember),
        _lock: Some(lock),
    })
}

/// Replaces `path` with `data`: a crash leaves the old or the new content, never a mix.
fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
