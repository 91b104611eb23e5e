//! Documents as files under the data directory (layout in `file/mod.rs`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::write_atomically;
use crate::storage::documents::DocumentStore;
use crate::storage::remote::blocking as off_the_runtime;

const TOPIC_PREFIX: &str = "topic/";

pub struct FileDocuments {
    root: PathBuf,
    /// Makes `put_if`'s compare and write one step (one process owns the directory).
    writes: Mutex<()>,
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl FileDocuments {
    pub fn open(root: &Path) -> io::Result<FileDocuments> {
        fs::create_dir_all(root.join("topics"))?;
        fs::create_dir_all(root.join("docs"))?;
        let docs = FileDocuments {
            root: root.to_path_buf(),
            writes: Mutex::new(()),
        };
        docs.adopt_legacy_cluster_id()?;
        Ok(docs)
    }

    /// Directories written before documents were a seam keep the cluster id as
    /// `{"cluster_id": ...}` in `cluster.json`; it becomes the `cluster-id` document (the old
    /// file stays, for an older kop opening the directory again).
    fn adopt_legacy_cluster_id(&self) -> io::Result<()> {
        let Some(old) = not_found_is_none(fs::read(self.root.join("cluster.json")))? else {
            return Ok(());
        };
        if self.get("cluster-id")?.is_some() {
            return Ok(());
        }
        let v: serde_json::Value = serde_json::from_slice(&old)?;
        match v["cluster_id"].as_str() {
            Some(id) => self.put("cluster-id", Some(id.as_bytes())),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "cluster.json holds no cluster_id",
            )),
        }
    }

    /// The file of a document.
    fn path_of(&self, name: &str) -> io::Result<PathBuf> {
        let legal = !name.is_empty()
            && name.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if !legal {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a legal document name"),
            ));
        }
        Ok(match name {
            "security" => self.root.join("security.json"),
            "producer-ids" => self.root.join("producer-ids"),
            _ => match name.strip_prefix(TOPIC_PREFIX) {
                Some(topic) if !topic.contains('/') => {
                    self.root.join("topics").join(format!("{topic}.json"))
                }
                _ => self.root.join("docs").join(name),
            },
        })
    }

    fn write(&self, name: &str, data: Option<&[u8]>) -> io::Result<()> {
        let path = self.path_of(name)?;
        match data {
            Some(data) => {
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir)?;
                }
                write_atomically(&path, data)
            }
            None => not_found_is_none(fs::remove_file(&path)).map(drop),
        }
    }
}

/// Names of the documents in `dir` (recursively), each prefixed with `prefix`.
fn names_under(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let Some(entries) = not_found_is_none(fs::read_dir(dir))? else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if entry.file_type()?.is_dir() {
            names_under(&entry.path(), &format!("{prefix}{name}/"), out)?;
        } else if !name.ends_with(".tmp") {
            // (a write in progress, see `write_atomically`)
            out.push(format!("{prefix}{name}"));
        }
    }
    Ok(())
}

impl DocumentStore for FileDocuments {
    fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        not_found_is_none(fs::read(self.path_of(name)?))
    }

    // A write fsyncs the file and its directory (milliseconds): the runtime thread hands its
    // other tasks on meanwhile, as for remote documents (share states are saved on every
    // acknowledgement).
    fn put(&self, name: &str, data: Option<&[u8]>) -> io::Result<()> {
        off_the_runtime(|| {
            let _serial = self.writes.lock();
            self.write(name, data)
        })
    }

    fn put_if(&self, name: &str, data: Option<&[u8]>, expected: Option<&[u8]>) -> io::Result<bool> {
        off_the_runtime(|| {
            let _serial = self.writes.lock();
            if self.get(name)?.as_deref() != expected {
                return Ok(false);
            }
            self.write(name, data)?;
            Ok(true)
        })
    }

    fn names(&self, prefix: &str) -> io::Result<Vec<String>> {
        let mut all = Vec::new();
        for entry in fs::read_dir(self.root.join("topics"))? {
            let name = entry?.file_name();
            if let Some(topic) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                all.push(format!("{TOPIC_PREFIX}{topic}"));
            }
        }
        for (name, file) in [
            ("security", "security.json"),
            ("producer-ids", "producer-ids"),
        ] {
            if self.root.join(file).exists() {
                all.push(name.to_string());
            }
        }
        names_under(&self.root.join("docs"), "", &mut all)?;
        all.retain(|n| n.starts_with(prefix));
        all.sort();
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::metadata::{Metadata, TopicMeta};
    use std::sync::Arc;

    /// A data directory as kop wrote it before documents were a seam.
    fn old_layout(root: &Path) {
        fs::create_dir_all(root.join("topics")).unwrap();
        fs::write(
            root.join("cluster.json"),
            br#"{"cluster_id":"Old-Id_0123456789abcde"}"#,
        )
        .unwrap();
        fs::write(root.join("producer-ids"), b"2000").unwrap();
        fs::write(root.join("security.json"), br#"{"acls":[],"scram":[]}"#).unwrap();
        fs::write(
            root.join("topics/orders.json"),
            "{\n  \"name\": \"orders\",\n  \"id\": \"00000000-0000-0000-0000-000000000007\",\n  \"partitions\": 2,\n  \"configs\": {\n    \"retention.ms\": \"1000\"\n  }\n}",
        )
        .unwrap();
    }

    #[test]
    fn a_data_directory_of_the_old_layout_opens_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        old_layout(dir.path());
        let m = Metadata::new(Arc::new(FileDocuments::open(dir.path()).unwrap()));
        assert_eq!(
            m.cluster_id().unwrap().as_deref(),
            Some("Old-Id_0123456789abcde")
        );
        assert_eq!(m.security().unwrap().unwrap(), br#"{"acls":[],"scram":[]}"#);
        let topics = m.topics().unwrap();
        assert_eq!(topics.len(), 1);
        let orders = topics[0].clone();
        assert_eq!((orders.partitions, orders.id.as_u128()), (2, 7));
        assert_eq!(orders.configs["retention.ms"], "1000");
        // The pretty JSON on disk still matches as the previous metadata.
        let mut grown = orders.clone();
        grown.partitions = 3;
        assert!(m.save_topic(&grown, Some(&orders)).unwrap());
        assert_eq!(m.reserve_producer_ids(10).unwrap(), 2000);
        assert_eq!(fs::read(dir.path().join("producer-ids")).unwrap(), b"2010");
        // Opened again (now with docs/cluster-id): the same id, the grown topic.
        let m = Metadata::new(Arc::new(FileDocuments::open(dir.path()).unwrap()));
        assert_eq!(
            m.cluster_id().unwrap().as_deref(),
            Some("Old-Id_0123456789abcde")
        );
        assert_eq!(
            m.topics().unwrap(),
            vec![TopicMeta {
                partitions: 3,
                ..orders
            }]
        );
    }

    #[test]
    fn documents_map_to_files_and_names_list_them() {
        let dir = tempfile::tempdir().unwrap();
        let docs = FileDocuments::open(dir.path()).unwrap();
        docs.put("topic/a", Some(&b"1"[..])).unwrap();
        docs.put("txn/x", Some(&b"2"[..])).unwrap();
        assert!(docs
            .put_if("txn/x", Some(&b"3"[..]), None)
            .is_ok_and(|ok| !ok));
        assert!(docs
            .put_if("txn/x", Some(&b"3"[..]), Some(&b"2"[..]))
            .unwrap());
        assert!(dir.path().join("topics/a.json").exists());
        assert_eq!(fs::read(dir.path().join("docs/txn/x")).unwrap(), b"3");
        assert_eq!(docs.names("").unwrap(), ["topic/a", "txn/x"]);
        assert_eq!(docs.names("topic/").unwrap(), ["topic/a"]);
        docs.put("topic/a", None).unwrap();
        docs.put("topic/a", None).unwrap();
        assert_eq!(docs.get("topic/a").unwrap(), None);
        assert!(docs.put("../x", Some(&b""[..])).is_err());
    }
}
