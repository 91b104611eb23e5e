//! Partition logs as segment files under `DIR/logs/<topic>-<p>/`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::sync_dir;
use crate::records::batch::BatchHeader;
use crate::records::control::Marker;
use crate::storage::partition_log::{LogSettings, LogStore, PartitionLog};
use crate::storage::segment::SegmentStore;
use crate::storage::segmented_log::SegmentedLog;

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
        let mut bases: Vec<i64> = fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse::<i64>().ok()
            })
            .collect();
        bases.sort_unstable();
        let mut existing: Vec<(i64, Box<dyn SegmentStore>)> = Vec::new();
        for base in bases {
            existing.push((base, Box::new(FileSegment::open(segment_path(&dir, base))?)));
        }
        let factory_dir = dir.clone();
        let factory = Box::new(move |base: i64| -> io::Result<Box<dyn SegmentStore>> {
            let seg = FileSegment::open(segment_path(&factory_dir, base))?;
            sync_dir(&factory_dir)?;
            Ok(Box::new(seg))
        });
        let log = SegmentedLog::open(existing, settings, factory, crate::now_ms(), on_batch)?;
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
    file: File,
    len: u64,
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
        Ok(FileSegment { path, file, len })
    }
}

impl SegmentStore for FileSegment {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.file.write_all(data) {
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
    fn read_vec(&self, pos: u64, len: usize) -> io::Result<Vec<u8>> {
        // pread straight into the spare capacity: a fetch of ~1 MiB no longer pays for
        // zero-filling (and first-touching) its buffer before the kernel copies into it.
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let at = pos + buf.len() as u64;
            if rustix::io::pread(&self.file, rustix::buffer::spare_capacity(&mut buf), at)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        buf.truncate(len);
        Ok(buf)
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

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn remove(self: Box<Self>) -> io::Result<()> {
        drop(self.file);
        fs::remove_file(&self.path)
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
    fn read_vec_reads_exactly_the_range_and_stops_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = FileSegment::open(dir.path().join("s.log")).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        seg.append(&data).unwrap();
        assert_eq!(seg.read_vec(0, data.len()).unwrap(), data);
        assert_eq!(seg.read_vec(1234, 70_000).unwrap(), &data[1234..71_234]);
        assert_eq!(seg.read_vec(7, 0).unwrap(), Vec::<u8>::new());
        let past = seg.read_vec(199_990, 20).unwrap_err();
        assert_eq!(past.kind(), io::ErrorKind::UnexpectedEof);
    }
}
