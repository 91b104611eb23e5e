//! The local-log backend (`file://DIR`).
//!
//! Layout under DIR:
//! - `kop.lock`                   held while a server uses the directory
//! - `cluster.json`               the cluster id
//! - `producer-ids`               the next producer id not yet handed out
//! - `topics/<topic>.json`        topic metadata (id, partitions, config overrides)
//! - `logs/<topic>-<p>/<base>.log` segment files of raw batches, named by their base offset
//! - `groups/groups.log`           committed offsets and group metadata (`group::store`)
//!
//! Appends go straight to the segment file; once `write` returns the bytes are in the OS page
//! cache, so a killed process loses nothing it acknowledged. fsync is the broker's policy.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::log::SegmentedLog;
use super::segment::SegmentStore;
use super::{LogSettings, PartitionLog, Storage, TopicMeta};
use crate::records::batch::BatchHeader;

pub struct FileStorage {
    root: PathBuf,
    _lock: File,
    producer_ids: Mutex<()>,
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
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

impl FileStorage {
    /// Opens (creating if needed) a data directory and locks it against a second server.
    pub fn open(root: &Path) -> io::Result<FileStorage> {
        fs::create_dir_all(root.join("topics"))?;
        fs::create_dir_all(root.join("logs"))?;
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
        Ok(FileStorage {
            root: root.to_path_buf(),
            _lock: lock,
            producer_ids: Mutex::new(()),
        })
    }

    fn topic_file(&self, name: &str) -> PathBuf {
        self.root.join("topics").join(format!("{name}.json"))
    }

    fn log_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.root.join("logs").join(format!("{topic}-{partition}"))
    }
}

fn segment_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

impl Storage for FileStorage {
    fn load_security(&self) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.root.join("security.json")) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save_security(&self, data: &[u8]) -> io::Result<()> {
        write_atomically(&self.root.join("security.json"), data)
    }

    fn load_cluster_id(&self) -> io::Result<Option<String>> {
        match fs::read(self.root.join("cluster.json")) {
            Ok(data) => {
                let v: serde_json::Value = serde_json::from_slice(&data)?;
                Ok(v["cluster_id"].as_str().map(str::to_string))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn save_cluster_id(&self, id: &str) -> io::Result<()> {
        let data = serde_json::to_vec(&serde_json::json!({ "cluster_id": id }))?;
        write_atomically(&self.root.join("cluster.json"), &data)
    }

    fn load_topics(&self) -> io::Result<Vec<TopicMeta>> {
        let mut topics = Vec::new();
        for entry in fs::read_dir(self.root.join("topics"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let meta: TopicMeta = serde_json::from_slice(&fs::read(&path)?)?;
                topics.push(meta);
            }
        }
        Ok(topics)
    }

    fn save_topic(&self, meta: &TopicMeta, _previous: Option<&TopicMeta>) -> io::Result<bool> {
        // One process owns the directory: nobody else can have changed it.
        write_atomically(
            &self.topic_file(&meta.name),
            &serde_json::to_vec_pretty(meta)?,
        )?;
        Ok(true)
    }

    fn delete_topic(&self, meta: &TopicMeta) -> io::Result<()> {
        // Metadata first: a crash half-way leaves orphan data, never a topic without data.
        fs::remove_file(self.topic_file(&meta.name))?;
        for p in 0..meta.partitions {
            match fs::remove_dir_all(self.log_dir(&meta.name, p)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn open_log(
        &self,
        topic: &str,
        partition: i32,
        settings: LogSettings,
        on_batch: &mut dyn FnMut(&BatchHeader),
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

    fn reserve_producer_ids(&self, count: i64) -> io::Result<i64> {
        let _guard = self.producer_ids.lock();
        let path = self.root.join("producer-ids");
        let next = match fs::read_to_string(&path) {
            Ok(s) => s.trim().parse::<i64>().map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        write_atomically(&path, (next + count).to_string().as_bytes())?;
        Ok(next)
    }

    fn open_group_stores(
        &self,
        sync_each_append: bool,
    ) -> io::Result<Vec<std::sync::Arc<dyn crate::group::GroupStore>>> {
        Ok(vec![std::sync::Arc::new(
            crate::group::FileGroupStore::open(&self.root.join("groups"), sync_each_append)?,
        )])
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
