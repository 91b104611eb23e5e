//! Group records in `DIR/groups/groups.log` (and transaction state in
//! `DIR/transactions/txn.log`, the same format).
//!
//! Frames: `len: u32 BE`, `crc32c(record): u32 BE`, `record`. A torn or corrupt tail is cut off
//! on load.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::sync_dir;
use crate::storage::group_log::GroupLog;

pub struct FileGroupLog {
    path: PathBuf,
    file: Mutex<File>,
    sync_each_append: bool,
}

const MAX_RECORD: usize = 64 << 20;

fn encode(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.iter().map(|r| r.len() + 8).sum());
    for r in records {
        out.extend_from_slice(&(r.len() as u32).to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(r).to_be_bytes());
        out.extend_from_slice(r);
    }
    out
}

/// The records in `data` and the length of its valid prefix.
fn decode(data: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= 8 {
        let len = u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        let crc = u32::from_be_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let len = len as usize;
        if len > MAX_RECORD || data.len() - pos - 8 < len {
            break;
        }
        let record = &data[pos + 8..pos + 8 + len];
        if crc32c::crc32c(record) != crc {
            break;
        }
        out.push(record.to_vec());
        pos += 8 + len;
    }
    (out, pos)
}

impl FileGroupLog {
    /// Opens `DIR/groups.log`. `sync_each_append`: fsync every append (`fsync = "always"`).
    pub fn open(dir: &Path, sync_each_append: bool) -> io::Result<FileGroupLog> {
        FileGroupLog::open_named(dir, "groups.log", sync_each_append)
    }

    /// Opens `DIR/<file_name>` (the transaction coordinator's `transactions/txn.log`).
    pub fn open_named(
        dir: &Path,
        file_name: &str,
        sync_each_append: bool,
    ) -> io::Result<FileGroupLog> {
        fs::create_dir_all(dir)?;
        let path = dir.join(file_name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        Ok(FileGroupLog {
            path,
            file: Mutex::new(file),
            sync_each_append,
        })
    }
}

impl GroupLog for FileGroupLog {
    fn load(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut file = self.file.lock();
        let mut data = Vec::new();
        file.seek(SeekFrom::Start(0))?;
        file.read_to_end(&mut data)?;
        let (records, valid) = decode(&data);
        if valid < data.len() {
            tracing::warn!(
                path = %self.path.display(),
                dropped_bytes = data.len() - valid,
                "group log: cut a torn or corrupt tail"
            );
            file.set_len(valid as u64)?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok(records)
    }

    fn append(&self, records: Vec<Vec<u8>>) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let bytes = encode(&records);
        let mut file = self.file.lock();
        file.write_all(&bytes)?;
        if self.sync_each_append {
            file.sync_data()?;
        }
        Ok(())
    }

    fn rewrite(&self, live: Vec<Vec<u8>>) -> io::Result<()> {
        // A fresh store (every first start) has nothing to compact: skip the copy, its two
        // fsyncs and the rename, a few ms of start-up each for the group and txn logs.
        if live.is_empty() && self.file.lock().metadata()?.len() == 0 {
            return Ok(());
        }
        let bytes = encode(&live);
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        let mut file = self.file.lock();
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        let mut reopened = OpenOptions::new().read(true).write(true).open(&self.path)?;
        reopened.seek(SeekFrom::End(0))?;
        *file = reopened;
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.file.lock().sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(items: &[&str]) -> Vec<Vec<u8>> {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn appends_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = FileGroupLog::open(dir.path(), false).unwrap();
            assert!(log.load().unwrap().is_empty());
            log.append(recs(&["a", "b"])).unwrap();
        }
        let path = dir.path().join("groups.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
        drop(f);
        let log = FileGroupLog::open(dir.path(), false).unwrap();
        assert_eq!(log.load().unwrap(), recs(&["a", "b"]));
        log.append(recs(&["c"])).unwrap();
        log.rewrite(recs(&["c"])).unwrap();
        log.append(recs(&["d"])).unwrap();
        let log = FileGroupLog::open(dir.path(), false).unwrap();
        assert_eq!(log.load().unwrap(), recs(&["c", "d"]));
    }

    #[test]
    fn rewriting_to_nothing_empties_a_log_and_leaves_an_empty_one_alone() {
        let dir = tempfile::tempdir().unwrap();
        let log = FileGroupLog::open(dir.path(), false).unwrap();
        log.rewrite(Vec::new()).unwrap();
        assert!(!dir.path().join("groups.tmp").exists());
        log.append(recs(&["a"])).unwrap();
        log.rewrite(Vec::new()).unwrap();
        log.append(recs(&["b"])).unwrap();
        let log = FileGroupLog::open(dir.path(), false).unwrap();
        assert_eq!(log.load().unwrap(), recs(&["b"]));
    }
}
