//! Config overrides of named entities (the GROUP config resource; the broker's cluster default
//! and its nodes), all of one kind kept as one JSON document of the document seam, so every
//! kop instance sharing the storage sees them (reloaded by the cluster sync).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::metadata::Metadata;

/// key → value of one entity.
pub type Configs = BTreeMap<String, String>;
/// entity → its overrides (entities without overrides are absent).
pub type Overrides = BTreeMap<String, Configs>;

pub struct StoredOverrides {
    doc: &'static str,
    /// None: kept in memory only (tests).
    stored_in: Option<Arc<Metadata>>,
    current: RwLock<Overrides>,
    /// Serialises this process's read-modify-writes.
    writes: Mutex<()>,
}

fn invalid(doc: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{doc}: {e}"))
}

impl StoredOverrides {
    pub fn load(doc: &'static str, stored_in: Option<Arc<Metadata>>) -> io::Result<Self> {
        let s = StoredOverrides {
            doc,
            stored_in,
            current: RwLock::default(),
            writes: Mutex::new(()),
        };
        s.reload()?;
        Ok(s)
    }

    fn stored(&self) -> io::Result<(Option<Vec<u8>>, Overrides)> {
        let Some(m) = &self.stored_in else {
            return Ok((None, self.current.read().clone()));
        };
        let data = m.document(self.doc)?;
        let parsed = match &data {
            None => Overrides::new(),
            Some(d) => serde_json::from_slice(d).map_err(|e| invalid(self.doc, e))?,
        };
        Ok((data, parsed))
    }

    /// Takes the stored overrides again; true if they changed. Blocks.
    pub fn reload(&self) -> io::Result<bool> {
        let _w = self.writes.lock();
        let (_, stored) = self.stored()?;
        let changed = *self.current.read() != stored;
        if changed {
            *self.current.write() = stored;
        }
        Ok(changed)
    }

    /// One entity's overrides (empty if none).
    pub fn get(&self, entity: &str) -> Configs {
        self.current.read().get(entity).cloned().unwrap_or_default()
    }

    /// `edit` on the entity's stored overrides (it also validates them); with `validate_only`
    /// nothing is stored. Compare-and-set against other instances: `edit` may run again.
    /// The outer error is storage's, the inner one `edit`'s. Blocks.
    pub fn alter<E>(
        &self,
        entity: &str,
        validate_only: bool,
        edit: impl Fn(&mut Configs) -> Result<(), E>,
    ) -> io::Result<Result<(), E>> {
        let _w = self.writes.lock();
        loop {
            let (before, mut all) = self.stored()?;
            let mut configs = all.get(entity).cloned().unwrap_or_default();
            if let Err(e) = edit(&mut configs) {
                return Ok(Err(e));
            }
            if validate_only {
                return Ok(Ok(()));
            }
            if configs.is_empty() {
                all.remove(entity);
            } else {
                all.insert(entity.to_string(), configs);
            }
            if let Some(m) = &self.stored_in {
                let data = serde_json::to_vec(&all).map_err(|e| invalid(self.doc, e))?;
                if !m.save_document(self.doc, &data, before.as_deref())? {
                    continue;
                }
            }
            *self.current.write() = all;
            return Ok(Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryDocuments;

    #[test]
    fn overrides_are_stored_and_seen_by_another_instance() {
        let docs = Arc::new(MemoryDocuments::default());
        let m = Arc::new(Metadata::new(docs));
        let a = StoredOverrides::load("group-configs", Some(m.clone())).unwrap();
        let b = StoredOverrides::load("group-configs", Some(m)).unwrap();
        let set = |c: &mut Configs| -> Result<(), String> {
            c.insert("k".into(), "1".into());
            Ok(())
        };
        a.alter("g", false, set).unwrap().unwrap();
        assert_eq!(a.get("g")["k"], "1");
        assert!(b.get("g").is_empty());
        assert!(b.reload().unwrap());
        assert_eq!(b.get("g")["k"], "1");
        // A refused edit and a validate-only one store nothing.
        let refuse = |_: &mut Configs| Err("no".to_string());
        assert_eq!(b.alter("g", false, refuse).unwrap(), Err("no".into()));
        let clear = |c: &mut Configs| -> Result<(), String> {
            c.clear();
            Ok(())
        };
        b.alter("g", true, clear).unwrap().unwrap();
        assert_eq!(b.get("g")["k"], "1");
        b.alter("g", false, clear).unwrap().unwrap();
        assert!(a.reload().unwrap());
        assert!(a.get("g").is_empty());
    }
}
