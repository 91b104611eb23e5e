//! The registry's state over the document seam, shared by every kop instance on the storage
//! (each read goes to the store, so a registration on one instance is seen by the others; each
//! change is a compare-and-set, so two instances never hand out the same id or version).
//!
//! Documents (docs/schema-registry.md):
//! - `schema-registry/next-id`            the next schema id not yet handed out, decimal
//! - `schema-registry/ids/<id>`           a schema (`SchemaDoc`), written once
//! - `schema-registry/fingerprints/<hex>` the id of a schema (SHA-256 of type, text, references)
//! - `schema-registry/subjects/<enc>`     a subject's versions and settings (`SubjectDoc`)
//! - `schema-registry/config`             the global compatibility level and mode
//! - `schema-registry/uses/<id>`          the subjects that hold (or held) schema <id>
//! - `schema-registry/referrers/<enc>`    the ids of the schemas referencing a subject
//! - `schema-registry/indexed`            present once the two indexes above cover every schema
//!
//! The indexes let id and reference lookups read a few documents instead of every subject.
//! Writers add to them before the document they index (a subject's version, a schema), so an
//! index is a superset of the truth on every instance; readers confirm against the documents.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{RegistryError, Result};
use crate::storage::DocumentStore;

const PREFIX: &str = "schema-registry/";
const NEXT_ID: &str = "schema-registry/next-id";
const IDS: &str = "schema-registry/ids/";
const FINGERPRINTS: &str = "schema-registry/fingerprints/";
const SUBJECTS: &str = "schema-registry/subjects/";
const CONFIG: &str = "schema-registry/config";
const USES: &str = "schema-registry/uses/";
const REFERRERS: &str = "schema-registry/referrers/";
const INDEXED: &str = "schema-registry/indexed";

/// A reference from a schema to another subject's version (Confluent's `references`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// One schema, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDoc {
    #[serde(rename = "schemaType")]
    pub schema_type: String,
    pub schema: String,
    #[serde(default)]
    pub references: Vec<Reference>,
}

impl SchemaDoc {
    /// What identifies a schema: equal fingerprints, equal schemas (the same id everywhere).
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.schema_type.as_bytes());
        h.update([0]);
        h.update(self.schema.as_bytes());
        for r in &self.references {
            h.update([0]);
            h.update(format!("{}\0{}\0{}", r.name, r.subject, r.version).as_bytes());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionEntry {
    pub version: i32,
    pub id: i64,
    #[serde(default)]
    pub deleted: bool,
}

/// A subject: its versions (soft-deleted ones marked) and its own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectDoc {
    pub subject: String,
    #[serde(default)]
    pub versions: Vec<VersionEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl SubjectDoc {
    pub fn live(&self) -> impl Iterator<Item = &VersionEntry> {
        self.versions.iter().filter(|v| !v.deleted)
    }
    /// Whether the subject has versions (with `deleted`, soft-deleted ones count).
    pub fn exists(&self, deleted: bool) -> bool {
        self.versions.iter().any(|v| deleted || !v.deleted)
    }
}

/// The global settings (None: the default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Subject names may hold any character; document names only `[A-Za-z0-9._-]` per part:
/// letters, digits and `-` stay, every other byte becomes `_xx`.
fn subject_doc(subject: &str) -> String {
    subject_name(SUBJECTS, subject)
}

fn subject_name(prefix: &str, subject: &str) -> String {
    let mut name = String::from(prefix);
    for b in subject.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            name.push(b as char);
        } else {
            name.push_str(&format!("_{b:02x}"));
        }
    }
    name
}

fn parse<T: DeserializeOwned>(name: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| RegistryError::store(format!("{name}: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("registry documents serialise")
}

fn parse_counter(data: &[u8]) -> Result<i64> {
    std::str::from_utf8(data)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| RegistryError::store(format!("{NEXT_ID} is not a number")))
}

pub struct Store {
    docs: Arc<dyn DocumentStore>,
    /// Whether `INDEXED` was seen (it is never removed).
    indexed: AtomicBool,
}

impl Store {
    pub fn new(docs: Arc<dyn DocumentStore>) -> Store {
        Store {
            docs,
            indexed: AtomicBool::new(false),
        }
    }

    /// Adds `item` to the JSON list in document `name` (compare-and-set).
    fn add_to_list<T>(&self, name: &str, item: T) -> Result<()>
    where
        T: Serialize + DeserializeOwned + PartialEq + Clone,
    {
        loop {
            let raw = self.docs.get(name)?;
            let mut list: Vec<T> = match &raw {
                Some(d) => parse(name, d)?,
                None => Vec::new(),
            };
            if list.contains(&item) {
                return Ok(());
            }
            list.push(item.clone());
            if self
                .docs
                .put_if(name, Some(&to_json(&list)), raw.as_deref())?
            {
                return Ok(());
            }
        }
    }

    fn list<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>> {
        match self.docs.get(name)? {
            Some(d) => parse(name, &d),
            None => Ok(Vec::new()),
        }
    }

    /// Records that `subject` holds schema `id` (before its version is stored).
    pub fn add_use(&self, id: i64, subject: &str) -> Result<()> {
        self.add_to_list(&format!("{USES}{id}"), subject.to_string())
    }

    /// The subjects that may hold schema `id` (a superset: check their documents).
    pub fn subjects_using(&self, id: i64) -> Result<Vec<String>> {
        self.ensure_indexed()?;
        self.list(&format!("{USES}{id}"))
    }

    /// The ids of schemas that may reference `subject` (a superset: check the schemas).
    pub fn referrers(&self, subject: &str) -> Result<Vec<i64>> {
        self.ensure_indexed()?;
        self.list(&subject_name(REFERRERS, subject))
    }

    /// Builds the indexes from every document once, for schemas stored before they existed
    /// (any instance may do it: adding to the lists is idempotent).
    fn ensure_indexed(&self) -> Result<()> {
        if self.indexed.load(Ordering::Acquire) {
            return Ok(());
        }
        if self.docs.get(INDEXED)?.is_none() {
            for s in self.subjects()? {
                for v in &s.versions {
                    self.add_use(v.id, &s.subject)?;
                }
            }
            for id in self.schema_ids()? {
                if let Some(schema) = self.schema(id)? {
                    for r in &schema.references {
                        self.add_to_list(&subject_name(REFERRERS, &r.subject), id)?;
                    }
                }
            }
            self.docs.put_if(INDEXED, Some(b"1"), None)?;
        }
        self.indexed.store(true, Ordering::Release);
        Ok(())
    }

    pub fn schema(&self, id: i64) -> Result<Option<SchemaDoc>> {
        let name = format!("{IDS}{id}");
        self.docs.get(&name)?.map(|d| parse(&name, &d)).transpose()
    }

    /// Every stored schema id, ascending.
    pub fn schema_ids(&self) -> Result<Vec<i64>> {
        let mut ids: Vec<i64> = self
            .docs
            .names(IDS)?
            .iter()
            .filter_map(|n| n.strip_prefix(IDS)?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The id of a schema already stored.
    pub fn id_of(&self, schema: &SchemaDoc) -> Result<Option<i64>> {
        let name = format!("{FINGERPRINTS}{}", schema.fingerprint());
        self.docs.get(&name)?.map(|d| parse_counter(&d)).transpose()
    }

    /// The id of `schema`: the one it has, else a new one (or `wanted`, in IMPORT mode).
    pub fn id_for(&self, schema: &SchemaDoc, wanted: Option<i64>) -> Result<i64> {
        if let Some(id) = self.id_of(schema)? {
            if wanted.is_some_and(|w| w != id) {
                return Err(RegistryError::id_conflict(wanted.unwrap_or(id)));
            }
            return Ok(id);
        }
        let id = match wanted {
            Some(id) => {
                self.raise_next_id(id + 1)?;
                id
            }
            None => self.take_next_id()?,
        };
        for r in &schema.references {
            self.add_to_list(&subject_name(REFERRERS, &r.subject), id)?;
        }
        let doc = to_json(schema);
        let name = format!("{IDS}{id}");
        if !self.docs.put_if(&name, Some(&doc), None)? && self.schema(id)?.as_ref() != Some(schema)
        {
            return Err(RegistryError::id_conflict(id));
        }
        // Two instances registering the same new schema at once: the first fingerprint stored
        // wins and both answer its id (the loser's id stays unused: ids never collide).
        let fp = format!("{FINGERPRINTS}{}", schema.fingerprint());
        if self
            .docs
            .put_if(&fp, Some(id.to_string().as_bytes()), None)?
        {
            return Ok(id);
        }
        self.id_of(schema)?
            .ok_or_else(|| RegistryError::store("a schema fingerprint vanished"))
    }

    fn take_next_id(&self) -> Result<i64> {
        loop {
            let stored = self.docs.get(NEXT_ID)?;
            let id = stored
                .as_deref()
                .map(parse_counter)
                .transpose()?
                .unwrap_or(1);
            let next = (id + 1).to_string();
            if self
                .docs
                .put_if(NEXT_ID, Some(next.as_bytes()), stored.as_deref())?
            {
                return Ok(id);
            }
        }
    }

    /// After an import: ids handed out later are above every imported one.
    fn raise_next_id(&self, at_least: i64) -> Result<()> {
        loop {
            let stored = self.docs.get(NEXT_ID)?;
            let next = stored
                .as_deref()
                .map(parse_counter)
                .transpose()?
                .unwrap_or(1);
            if next >= at_least {
                return Ok(());
            }
            let doc = at_least.to_string();
            if self
                .docs
                .put_if(NEXT_ID, Some(doc.as_bytes()), stored.as_deref())?
            {
                return Ok(());
            }
        }
    }

    /// The subject's document and its bytes as stored (for a compare-and-set).
    pub fn subject_raw(&self, subject: &str) -> Result<(SubjectDoc, Option<Vec<u8>>)> {
        let name = subject_doc(subject);
        let raw = self.docs.get(&name)?;
        let doc = match &raw {
            Some(d) => parse(&name, d)?,
            None => SubjectDoc {
                subject: subject.to_string(),
                ..SubjectDoc::default()
            },
        };
        Ok((doc, raw))
    }

    pub fn subject(&self, subject: &str) -> Result<SubjectDoc> {
        Ok(self.subject_raw(subject)?.0)
    }

    /// Stores `doc` if the subject still holds `expected`; false if it changed meanwhile.
    pub fn save_subject(&self, doc: &SubjectDoc, expected: Option<&[u8]>) -> Result<bool> {
        let name = subject_doc(&doc.subject);
        let empty = doc.versions.is_empty() && doc.compatibility.is_none() && doc.mode.is_none();
        let data = (!empty).then(|| to_json(doc));
        Ok(self.docs.put_if(&name, data.as_deref(), expected)?)
    }

    /// Applies `change` to a subject until it is stored unchanged by others meanwhile.
    pub fn update_subject<T>(
        &self,
        subject: &str,
        mut change: impl FnMut(&mut SubjectDoc) -> Result<T>,
    ) -> Result<T> {
        loop {
            let (mut doc, raw) = self.subject_raw(subject)?;
            let out = change(&mut doc)?;
            if self.save_subject(&doc, raw.as_deref())? {
                return Ok(out);
            }
        }
    }

    /// Every subject document, by subject name.
    pub fn subjects(&self) -> Result<Vec<SubjectDoc>> {
        let mut out = Vec::new();
        for name in self.docs.names(SUBJECTS)? {
            if let Some(d) = self.docs.get(&name)? {
                out.push(parse::<SubjectDoc>(&name, &d)?);
            }
        }
        out.sort_by(|a, b| a.subject.cmp(&b.subject));
        Ok(out)
    }

    pub fn global(&self) -> Result<(GlobalConfig, Option<Vec<u8>>)> {
        let raw = self.docs.get(CONFIG)?;
        let doc = match &raw {
            Some(d) => parse(CONFIG, d)?,
            None => GlobalConfig::default(),
        };
        Ok((doc, raw))
    }

    pub fn update_global<T>(
        &self,
        mut change: impl FnMut(&mut GlobalConfig) -> Result<T>,
    ) -> Result<T> {
        loop {
            let (mut doc, raw) = self.global()?;
            let out = change(&mut doc)?;
            let data = (doc != GlobalConfig::default()).then(|| to_json(&doc));
            if self.docs.put_if(CONFIG, data.as_deref(), raw.as_deref())? {
                return Ok(out);
            }
        }
    }
}

/// Whether a document name is the registry's (for tools listing documents).
pub fn is_registry_document(name: &str) -> bool {
    name.starts_with(PREFIX)
}

impl From<RegistryError> for io::Error {
    fn from(e: RegistryError) -> io::Error {
        io::Error::other(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryDocuments;

    fn avro(s: &str) -> SchemaDoc {
        SchemaDoc {
            schema_type: "AVRO".into(),
            schema: s.into(),
            references: Vec::new(),
        }
    }

    #[test]
    fn ids_are_shared_by_equal_schemas_and_never_reused() {
        let store = Store::new(Arc::new(MemoryDocuments::default()));
        assert_eq!(store.id_for(&avro("\"string\""), None).unwrap(), 1);
        assert_eq!(store.id_for(&avro("\"int\""), None).unwrap(), 2);
        assert_eq!(store.id_for(&avro("\"string\""), None).unwrap(), 1);
        assert_eq!(store.id_for(&avro("\"long\""), Some(10)).unwrap(), 10);
        assert_eq!(store.id_for(&avro("\"bytes\""), None).unwrap(), 11);
        assert!(store.id_for(&avro("\"long\""), Some(12)).is_err());
        assert_eq!(store.schema_ids().unwrap(), vec![1, 2, 10, 11]);
        assert_eq!(
            subject_doc("a.b_c-d/é"),
            "schema-registry/subjects/a_2eb_5fc-d_2f_c3_a9"
        );
    }

    #[test]
    fn stores_sharing_documents_never_hand_out_an_id_twice() {
        let docs: Arc<dyn DocumentStore> = Arc::new(MemoryDocuments::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = Store::new(docs.clone());
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| store.id_for(&avro(&format!("\"t{t}-{i}\"")), None).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut ids: Vec<i64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 200);
    }
}
