//! Partition logs as segment files under `DIR/logs/<topic>-<p>/`:
//! - `<base>.log`           a segment (raw batches), named by its base offset (20 digits);
//! - `<base>.cleaned`       a cleaned copy being written (deleted by a recovery);
//! - `<base>.<end>.swap`    a cleaned copy that replaces the segments with base offsets in
//!   `[base, end)`: renaming the `.cleaned` file to this is the clean's commit point; a
//!   recovery finishes the swap (deletes those segments, renames it to `<base>.log`);
//! - `cleaner-offset`       where the next clean starts;
//! - `log-start-offset`     the log start a DeleteRecords set (may be inside the first segment).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{sync_dir, write_atomically};
use crate::records::batch::BatchHeader;
use crate::records::control::Marker;
use crate::storage::partition_log::{LogSettings, LogStore, PartitionLog};
use crate::storage::segment::{SegmentRead, SegmentStore, SegmentSync};
use crate::storage::segmented_log::{SegmentFiles, SegmentedLog};

pub struct FileLogs {
    dir: PathBuf,
}

impl FileLogs {
    pub fn open(dir: &Path) -> io::Result<FileLogs> {
        fs::create_dir_all(dir)?;
        Ok(FileLogs {
            dir: dir.to_path_buf(),
        })
    }

    fn log_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.dir.join(format!("{topic}-{partition}"))
    }
}

fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.cleaned"))
}

fn swap_path(dir: &Path, base: i64, end: i64) -> PathBuf {
    dir.join(format!("{base:020}.{end:020}.swap"))
}

const CLEANER_OFFSET: &str = "cleaner-offset";
const LOG_START_OFFSET: &str = "log-start-offset";

/// An offset kept in a small file of the partition's directory (0 when absent or unreadable).
fn read_offset_file(dir: &Path, name: &str) -> i64 {
    fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0)
}

/// Base offsets of the `.log` segments in `dir`, sorted.
fn segment_bases(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases: Vec<i64> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<i64>().ok()
        })
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Finishes or undoes cleans a crash interrupted: a `.cleaned` file is an unfinished copy
/// (the old segments are all there): deleted; a `.swap` file is a committed one: the segments
/// it replaces are deleted (some may be gone already) and it becomes `<base>.log`.
fn recover_cleaning(dir: &Path) -> io::Result<()> {
    let mut changed = false;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().into_string().unwrap_or_default();
        if name.ends_with(".cleaned") {
            tracing::info!(file = %name, "removing an unfinished cleaned segment");
            fs::remove_file(dir.join(&name))?;
            changed = true;
        }
    }
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().into_string().unwrap_or_default();
        let Some((base, end)) = name
            .strip_suffix(".swap")
            .and_then(|s| s.split_once('.'))
            .and_then(|(b, e)| Some((b.parse::<i64>().ok()?, e.parse::<i64>().ok()?)))
        else {
            continue;
        };
        tracing::info!(file = %name, "finishing the swap of a cleaned segment");
        for old in segment_bases(dir)?
            .into_iter()
            .filter(|b| (base..end).contains(b))
        {
            fs::remove_file(segment_path(dir, old))?;
        }
        fs::rename(dir.join(&name), segment_path(dir, base))?;
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// One partition's segment files.
struct FileSegments {
    dir: PathBuf,
}

impl SegmentFiles for FileSegments {
    fn create(&self, base: i64) -> io::Result<Box<dyn SegmentStore>> {
        let seg = FileSegment::open(segment_path(&self.dir, base))?;
        sync_dir(&self.dir)?;
        Ok(Box::new(seg))
    }

    fn create_cleaned(&self, base: i64) -> io::Result<Box<dyn SegmentStore>> {
        let path = cleaned_path(&self.dir, base);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(Box::new(FileSegment::open(path)?))
    }

    fn swap_in(
        &self,
        base: i64,
        end: i64,
        cleaned: Box<dyn SegmentStore>,
        old: Vec<Box<dyn SegmentStore>>,
    ) -> io::Result<Box<dyn SegmentStore>> {
        cleaned.sync()?;
        drop(cleaned);
        let swap = swap_path(&self.dir, base, end);
        fs::rename(cleaned_path(&self.dir, base), &swap)?;
        sync_dir(&self.dir)?; // the commit point: from here a recovery finishes the swap
        for store in old {
            store.remove()?;
        }
        let path = segment_path(&self.dir, base);
        fs::rename(&swap, &path)?;
        sync_dir(&self.dir)?;
        Ok(Box::new(FileSegment::open(path)?))
    }

    fn save_cleaner_offset(&self, offset: i64) -> io::Result<()> {
        write_atomically(
            &self.dir.join(CLEANER_OFFSET),
            offset.to_string().as_bytes(),
        )
    }

    fn save_log_start(&self, offset: i64) -> io::Result<()> {
        write_atomically(
            &self.dir.join(LOG_START_OFFSET),
            offset.to_string().as_bytes(),
        )
    }
}

impl LogStore for FileLogs {
    fn open(
        &self,
        topic: &str,
        partition: i32,
        settings: LogSettings,
        on_batch: &mut dyn FnMut(&BatchHeader, Option<Marker>),
    ) -> io::Result<Box<dyn PartitionLog>> {
        let dir = self.log_dir(topic, partition);
        fs::create_dir_all(&dir)?;
        recover_cleaning(&dir)?;
        let mut existing: Vec<(i64, Box<dyn SegmentStore>)> = Vec::new();
        for base in segment_bases(&dir)? {
            existing.push((base, Box::new(FileSegment::open(segment_path(&dir, base))?)));
        }
        let cleaner_offset = read_offset_file(&dir, CLEANER_OFFSET);
        let saved_log_start = read_offset_file(&dir, LOG_START_OFFSET);
        let files = Arc::new(FileSegments { dir });
        let log = SegmentedLog::open(
            existing,
            settings,
            files,
            crate::now_ms(),
            cleaner_offset,
            saved_log_start,
            on_batch,
        )?;
        Ok(Box::new(log))
    }

    fn delete(&self, topic: &str, partitions: i32) -> io::Result<()> {
        for p in 0..partitions {
            match fs::remove_dir_all(self.log_dir(topic, p)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// A segment file. Appends use the file's append position; reads are positional.
struct FileSegment {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
}

impl SegmentRead for File {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        read_exact_at(self, buf, pos)
    }
}

impl SegmentSync for File {
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)] // sync_file_range has no safe wrapper in rustix or std
    fn start_writeback(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is this open file's; the call reads no memory of ours.
        // (0, 0) = the whole file; WRITE alone only queues the dirty pages for writing.
        let rc =
            unsafe { libc::sync_file_range(self.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl FileSegment {
    fn open(path: PathBuf) -> io::Result<FileSegment> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(&path)?;
        let len = file.metadata()?.len();
        Ok(FileSegment {
            path,
            file: Arc::new(file),
            len,
        })
    }
}

impl SegmentStore for FileSegment {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if let Err(e) = (&*self.file).write_all(data) {
            // Cut off a partial write so the log stays a sequence of whole batches.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += data.len() as u64;
        Ok(())
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        read_exact_at(&self.file, buf, pos)
    }

    #[cfg(unix)]
    fn read_bytes(&self, pos: u64, len: usize) -> io::Result<bytes::Bytes> {
        // pread straight into the spare capacity of a pooled buffer: a fetch of ~1 MiB pays
        // neither for zero-filling its buffer nor for faulting in fresh pages for it.
        let pool = &*super::read_buffers::READ_BUFFERS;
        let mut buf = pool.take(len);
        while buf.len() < len {
            let at = pos + buf.len() as u64;
            if rustix::io::pread(&*self.file, rustix::buffer::spare_capacity(&mut buf), at)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        buf.truncate(len);
        Ok(pool.share(buf))
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.len = len;
        Ok(())
    }

    fn remove(self: Box<Self>) -> io::Result<()> {
        drop(self.file);
        fs::remove_file(&self.path)
    }

    fn reader(&self) -> io::Result<Arc<dyn SegmentRead>> {
        Ok(self.file.clone())
    }

    fn syncer(&self) -> Arc<dyn SegmentSync> {
        self.file.clone()
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, pos)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, pos)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_bytes_reads_exactly_the_range_and_stops_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = FileSegment::open(dir.path().join("s.log")).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        seg.append(&data).unwrap();
        assert_eq!(seg.read_bytes(0, data.len()).unwrap(), data);
        assert_eq!(seg.read_bytes(1234, 70_000).unwrap(), &data[1234..71_234]);
        assert!(seg.read_bytes(7, 0).unwrap().is_empty());
        let past = seg.read_bytes(199_990, 20).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
    }
}
