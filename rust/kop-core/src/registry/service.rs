//! The registry's operations (Confluent's REST semantics) over the store, one method per
//! endpoint family; `routes.rs` maps requests onto them. Every answer is the JSON Confluent
//! answers.

use serde_json::{json, Value};

use super::compat::{self, Level, Parsed};
use super::error::{RegistryError, Result};
use super::store::{Reference, SchemaDoc, Store, SubjectDoc, VersionEntry};

pub const MODES: &[&str] = &["READWRITE", "READONLY", "IMPORT"];

/// A version named in a path: a number or `latest` (-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(i32),
}

impl VersionRef {
    pub fn parse(s: &str) -> Result<VersionRef> {
        if s == "latest" || s == "-1" {
            return Ok(VersionRef::Latest);
        }
        match s.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(VersionRef::Number(n)),
            _ => Err(RegistryError::invalid_version(s)),
        }
    }
}

/// A schema as a client submits it (register, lookup, compatibility test).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Submitted {
    pub schema: Option<String>,
    #[serde(rename = "schemaType")]
    pub schema_type: Option<String>,
    #[serde(default)]
    pub references: Vec<Reference>,
    /// IMPORT mode: the id and version to register under.
    pub id: Option<i64>,
    pub version: Option<i32>,
}

pub struct Registry {
    pub store: Store,
}

/// Confluent leaves out `schemaType` for AVRO and `references` when there are none.
fn schema_fields(out: &mut serde_json::Map<String, Value>, doc: &SchemaDoc) {
    if doc.schema_type != "AVRO" {
        out.insert("schemaType".into(), json!(doc.schema_type));
    }
    if !doc.references.is_empty() {
        out.insert("references".into(), json!(doc.references));
    }
}

impl Registry {
    // -- reading ------------------------------------------------------------------------------

    /// A subject that has (live, or with `deleted` any) versions.
    fn existing(&self, subject: &str, deleted: bool) -> Result<SubjectDoc> {
        let doc = self.store.subject(subject)?;
        if !doc.exists(deleted) {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(doc)
    }

    fn entry(doc: &SubjectDoc, version: VersionRef, deleted: bool) -> Result<VersionEntry> {
        let found = match version {
            VersionRef::Latest => doc.versions.iter().rev().find(|v| deleted || !v.deleted),
            VersionRef::Number(n) => doc
                .versions
                .iter()
                .find(|v| v.version == n && (deleted || !v.deleted)),
        };
        found.copied().ok_or_else(|| {
            let n = match version {
                VersionRef::Number(n) => n,
                VersionRef::Latest => -1,
            };
            RegistryError::version_not_found(&doc.subject, n)
        })
    }

    fn schema_doc(&self, id: i64) -> Result<SchemaDoc> {
        self.store
            .schema(id)?
            .ok_or_else(|| RegistryError::schema_id_not_found(id))
    }

    pub fn subjects(&self, deleted: bool, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .store
            .subjects()?
            .into_iter()
            .filter(|s| s.exists(deleted) && s.subject.starts_with(prefix))
            .map(|s| s.subject)
            .collect())
    }

    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Value> {
        let doc = self.existing(subject, deleted)?;
        let versions: Vec<i32> = doc
            .versions
            .iter()
            .filter(|v| deleted || !v.deleted)
            .map(|v| v.version)
            .collect();
        Ok(json!(versions))
    }

    pub fn version(
        &self,
        subject: &str,
        version: VersionRef,
        deleted: bool,
        format: Option<&str>,
    ) -> Result<Value> {
        let doc = self.existing(subject, deleted)?;
        let entry = Self::entry(&doc, version, deleted)?;
        self.describe(subject, entry, format)
    }

    fn describe(&self, subject: &str, entry: VersionEntry, format: Option<&str>) -> Result<Value> {
        let schema = self.formatted(entry.id, format)?;
        let mut out = serde_json::Map::new();
        out.insert("subject".into(), json!(subject));
        out.insert("version".into(), json!(entry.version));
        out.insert("id".into(), json!(entry.id));
        schema_fields(&mut out, &schema);
        out.insert("schema".into(), json!(schema.schema));
        Ok(Value::Object(out))
    }

    /// The raw schema text of a version (`.../schema`).
    pub fn version_schema(
        &self,
        subject: &str,
        version: VersionRef,
        deleted: bool,
    ) -> Result<String> {
        let doc = self.existing(subject, deleted)?;
        let entry = Self::entry(&doc, version, deleted)?;
        Ok(self.schema_doc(entry.id)?.schema)
    }

    /// Schema `id`, in the `format` asked for: `serialized` answers a PROTOBUF schema as a base64
    /// `FileDescriptorProto` (what confluent-kafka's Protobuf deserializer asks for).
    fn formatted(&self, id: i64, format: Option<&str>) -> Result<SchemaDoc> {
        let mut schema = self.schema_doc(id)?;
        if format == Some("serialized") {
            if let Some(serialized) = self.parse_doc(&schema)?.0.serialized() {
                schema.schema = serialized;
            }
        }
        Ok(schema)
    }

    /// `GET /schemas/ids/{id}`; `format=serialized` answers a PROTOBUF schema as a base64
    /// `FileDescriptorProto` (what confluent-kafka's deserializers ask for).
    pub fn schema_by_id(&self, id: i64, format: Option<&str>) -> Result<Value> {
        let schema = self.formatted(id, format)?;
        let mut out = serde_json::Map::new();
        out.insert("schema".into(), json!(schema.schema));
        schema_fields(&mut out, &schema);
        Ok(Value::Object(out))
    }

    /// (subject, version) of every version holding schema `id`, by subject (the id index names
    /// the subjects to read).
    pub fn uses_of(&self, id: i64, deleted: bool) -> Result<Vec<(String, i32)>> {
        let mut subjects = self.store.subjects_using(id)?;
        subjects.sort();
        let mut out = Vec::new();
        for subject in subjects {
            let s = self.store.subject(&subject)?;
            for v in &s.versions {
                if v.id == id && (deleted || !v.deleted) {
                    out.push((s.subject.clone(), v.version));
                }
            }
        }
        Ok(out)
    }

    /// The ids of the schemas that reference a subject's version.
    pub fn referenced_by(&self, subject: &str, version: VersionRef) -> Result<Vec<i64>> {
        let doc = self.existing(subject, false)?;
        let entry = Self::entry(&doc, version, false)?;
        let mut ids = self.store.referrers(subject)?;
        ids.sort_unstable();
        let mut out = Vec::new();
        for id in ids {
            let Some(s) = self.store.schema(id)? else {
                continue;
            };
            let refers = s
                .references
                .iter()
                .any(|r| r.subject == subject && r.version == entry.version);
            // Only schemas still registered somewhere hold the reference.
            if refers && !self.uses_of(id, false)?.is_empty() {
                out.push(id);
            }
        }
        Ok(out)
    }

    // -- schemas and compatibility ------------------------------------------------------------

    /// The (reference name, text) of the schemas `refs` name, transitively, dependencies first.
    fn referenced_texts(
        &self,
        refs: &[Reference],
        out: &mut Vec<(String, String)>,
        depth: usize,
    ) -> Result<()> {
        if depth > 32 {
            return Err(RegistryError::invalid_schema("references nest too deep"));
        }
        for r in refs {
            let doc = self.store.subject(&r.subject)?;
            let version = if r.version == -1 {
                VersionRef::Latest
            } else {
                VersionRef::Number(r.version)
            };
            let entry = Self::entry(&doc, version, false).map_err(|_| {
                RegistryError::invalid_schema(format!(
                    "reference {} to subject '{}' version {} does not exist",
                    r.name, r.subject, r.version
                ))
            })?;
            let schema = self.schema_doc(entry.id)?;
            self.referenced_texts(&schema.references, out, depth + 1)?;
            if !out.iter().any(|(name, _)| name == &r.name) {
                out.push((r.name.clone(), schema.schema));
            }
        }
        Ok(())
    }

    /// Parses a stored or submitted schema (resolving its references).
    fn parse_doc(&self, doc: &SchemaDoc) -> Result<(Parsed, String)> {
        let mut texts = Vec::new();
        self.referenced_texts(&doc.references, &mut texts, 0)?;
        compat::parse(&doc.schema_type, &doc.schema, &texts)
    }

    /// A submitted schema, checked and in its stored form.
    fn submitted(&self, body: &Submitted) -> Result<(Parsed, SchemaDoc)> {
        let text = body
            .schema
            .as_deref()
            .ok_or_else(|| RegistryError::invalid_schema("the request has no schema"))?;
        let mut doc = SchemaDoc {
            schema_type: compat::schema_type(body.schema_type.as_deref())?,
            schema: text.to_string(),
            references: body.references.clone(),
        };
        let (parsed, stored) = self.parse_doc(&doc)?;
        doc.schema = stored;
        Ok((parsed, doc))
    }

    pub fn level_of(&self, subject: &SubjectDoc) -> Result<Level> {
        let name = match &subject.compatibility {
            Some(c) => Some(c.clone()),
            None => self.store.global()?.0.compatibility,
        };
        Ok(name
            .as_deref()
            .and_then(Level::parse)
            .unwrap_or(Level::DEFAULT))
    }

    pub fn mode_of(&self, subject: Option<&SubjectDoc>) -> Result<String> {
        match subject.and_then(|s| s.mode.clone()) {
            Some(m) => Ok(m),
            None => Ok(self
                .store
                .global()?
                .0
                .mode
                .unwrap_or_else(|| "READWRITE".into())),
        }
    }

    /// Why `new` may not join `subject`'s versions (the live ones, oldest first).
    fn problems(
        &self,
        subject: &SubjectDoc,
        level: Level,
        new: &Parsed,
        only: Option<VersionEntry>,
    ) -> Result<Vec<String>> {
        if level == Level::None {
            return Ok(Vec::new());
        }
        let mut earlier = Vec::new();
        let entries: Vec<VersionEntry> = match only {
            Some(e) => vec![e],
            None => subject.live().copied().collect(),
        };
        for e in entries {
            let doc = self.schema_doc(e.id)?;
            earlier.push((e.version, self.parse_doc(&doc)?.0));
        }
        Ok(compat::check(level, new, &earlier))
    }

    pub fn register(&self, subject: &str, body: &Submitted) -> Result<Value> {
        let current = self.store.subject(subject)?;
        let mode = self.mode_of(Some(&current))?;
        if mode == "READONLY" {
            return Err(RegistryError::not_permitted(format!(
                "Subject {subject} is in read-only mode"
            )));
        }
        let importing = mode == "IMPORT";
        if !importing && (body.id.is_some_and(|id| id >= 0) || body.version.is_some_and(|v| v >= 1))
        {
            return Err(RegistryError::not_permitted(format!(
                "Subject {subject} is not in import mode: an id or version may not be given"
            )));
        }
        let (parsed, doc) = self.submitted(body)?;
        let existing_id = self.store.id_of(&doc)?;
        let mut assigned: Option<i64> = None;
        self.store.update_subject(subject, |s| {
            if let Some(id) = existing_id.or(assigned) {
                if let Some(v) = s.live().find(|v| v.id == id) {
                    return Ok(json!({"id": v.id, "version": v.version}));
                }
            }
            if !importing {
                let level = self.level_of(s)?;
                let problems = self.problems(s, level, &parsed, None)?;
                if !problems.is_empty() {
                    return Err(RegistryError::incompatible(format!(
                        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                        problems.join(", ")
                    )));
                }
            }
            let id = match assigned {
                Some(id) => id,
                None => {
                    let id = self.store.id_for(&doc, body.id.filter(|&i| i >= 0 && importing))?;
                    assigned = Some(id);
                    id
                }
            };
            // Indexed before the version is stored, so the index never misses it.
            self.store.add_use(id, subject)?;
            let next = s.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
            let version = match body.version.filter(|&v| v >= 1 && importing) {
                Some(v) if s.versions.iter().any(|e| e.version == v) => {
                    return Err(RegistryError::not_permitted(format!("Version {v} of subject {subject} exists")))
                }
                Some(v) => v,
                None => next,
            };
            s.versions.push(VersionEntry { version, id, deleted: false });
            s.versions.sort_by_key(|v| v.version);
            Ok(json!({"id": id, "version": version}))
        })
    }

    /// `POST /subjects/{s}`: the version of `subject` that holds the submitted schema.
    pub fn lookup(&self, subject: &str, body: &Submitted, deleted: bool) -> Result<Value> {
        let doc = self.existing(subject, deleted)?;
        let (_, schema) = self.submitted(body)?;
        let id = self
            .store
            .id_of(&schema)?
            .ok_or_else(RegistryError::schema_not_found)?;
        let entry = doc
            .versions
            .iter()
            .rev()
            .find(|v| v.id == id && (deleted || !v.deleted))
            .copied()
            .ok_or_else(RegistryError::schema_not_found)?;
        self.describe(subject, entry, None)
    }

    /// `POST /compatibility/subjects/{s}/versions[/{v}]`.
    pub fn test_compatibility(
        &self,
        subject: &str,
        version: Option<VersionRef>,
        body: &Submitted,
        verbose: bool,
    ) -> Result<Value> {
        let (parsed, _) = self.submitted(body)?;
        let doc = self.store.subject(subject)?;
        let only = match version {
            Some(v) if doc.exists(false) => Some(Self::entry(&doc, v, false)?),
            Some(VersionRef::Latest) | None => None,
            Some(VersionRef::Number(_)) => return Err(RegistryError::subject_not_found(subject)),
        };
        let level = self.level_of(&doc)?;
        let problems = self.problems(&doc, level, &parsed, only)?;
        let mut out = json!({"is_compatible": problems.is_empty()});
        if verbose {
            out["messages"] = json!(problems);
        }
        Ok(out)
    }

    // -- deletes ------------------------------------------------------------------------------

    fn check_writable(&self, subject: &SubjectDoc) -> Result<()> {
        if self.mode_of(Some(subject))? == "READONLY" {
            return Err(RegistryError::not_permitted(format!(
                "Subject {} is in read-only mode",
                subject.subject
            )));
        }
        Ok(())
    }

    fn check_unreferenced(&self, subject: &str, version: i32) -> Result<()> {
        if !self
            .referenced_by(subject, VersionRef::Number(version))
            .unwrap_or_default()
            .is_empty()
        {
            return Err(RegistryError::referenced(subject, version));
        }
        Ok(())
    }

    pub fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Value> {
        let current = self.existing(subject, true)?;
        self.check_writable(&current)?;
        if !permanent {
            for v in current.live() {
                self.check_unreferenced(subject, v.version)?;
            }
        }
        self.store.update_subject(subject, |s| {
            if !s.exists(true) {
                return Err(RegistryError::subject_not_found(subject));
            }
            let versions: Vec<i32> = if permanent {
                if s.live().next().is_some() {
                    return Err(RegistryError::subject_not_soft_deleted(subject));
                }
                s.versions.drain(..).map(|v| v.version).collect()
            } else {
                if s.live().next().is_none() {
                    return Err(RegistryError::subject_soft_deleted(subject));
                }
                let live = s.live().map(|v| v.version).collect();
                s.versions.iter_mut().for_each(|v| v.deleted = true);
                live
            };
            Ok(json!(versions))
        })
    }

    pub fn delete_version(
        &self,
        subject: &str,
        version: VersionRef,
        permanent: bool,
    ) -> Result<Value> {
        let current = self.existing(subject, true)?;
        self.check_writable(&current)?;
        // A numbered version is found soft-deleted too (to answer 40406 rather than 40402).
        let with_deleted = permanent || matches!(version, VersionRef::Number(_));
        let target = Self::entry(&current, version, with_deleted)?;
        if !permanent {
            self.check_unreferenced(subject, target.version)?;
        }
        self.store.update_subject(subject, |s| {
            let Some(pos) = s.versions.iter().position(|v| v.version == target.version) else {
                return Err(RegistryError::version_not_found(subject, target.version));
            };
            match (permanent, s.versions[pos].deleted) {
                (true, false) => {
                    return Err(RegistryError::version_not_soft_deleted(
                        subject,
                        target.version,
                    ))
                }
                (false, true) => {
                    return Err(RegistryError::version_soft_deleted(subject, target.version))
                }
                (true, true) => {
                    s.versions.remove(pos);
                }
                (false, false) => s.versions[pos].deleted = true,
            }
            Ok(json!(target.version))
        })
    }

    // -- config and mode ----------------------------------------------------------------------

    pub fn global_config(&self) -> Result<Value> {
        let level = self
            .store
            .global()?
            .0
            .compatibility
            .unwrap_or_else(|| Level::DEFAULT.name().into());
        Ok(json!({"compatibilityLevel": level}))
    }

    pub fn set_global_config(&self, level: Option<&str>) -> Result<Value> {
        let level = parse_level(level)?;
        self.store.update_global(|g| {
            g.compatibility = Some(level.name().into());
            Ok(())
        })?;
        Ok(json!({"compatibility": level.name()}))
    }

    pub fn delete_global_config(&self) -> Result<Value> {
        let previous = self.global_config()?;
        self.store.update_global(|g| {
            g.compatibility = None;
            Ok(())
        })?;
        Ok(previous)
    }

    pub fn subject_config(&self, subject: &str, default_to_global: bool) -> Result<Value> {
        let doc = self.store.subject(subject)?;
        match doc.compatibility {
            Some(c) => Ok(json!({"compatibilityLevel": c})),
            None if default_to_global => self.global_config(),
            None => Err(RegistryError::subject_level_compatibility_not_configured(
                subject,
            )),
        }
    }

    pub fn set_subject_config(&self, subject: &str, level: Option<&str>) -> Result<Value> {
        let level = parse_level(level)?;
        self.store.update_subject(subject, |s| {
            s.compatibility = Some(level.name().into());
            Ok(())
        })?;
        Ok(json!({"compatibility": level.name()}))
    }

    pub fn delete_subject_config(&self, subject: &str) -> Result<Value> {
        let previous = self.store.update_subject(subject, |s| {
            s.compatibility
                .take()
                .ok_or_else(|| RegistryError::subject_not_found(subject))
        })?;
        Ok(json!({"compatibilityLevel": previous}))
    }

    pub fn global_mode(&self) -> Result<Value> {
        Ok(json!({"mode": self.mode_of(None)?}))
    }

    pub fn set_global_mode(&self, mode: Option<&str>, force: bool) -> Result<Value> {
        let mode = parse_mode(mode)?;
        if mode == "IMPORT" && !force && !self.subjects(false, "")?.is_empty() {
            return Err(RegistryError::not_permitted(
                "Cannot import since found existing subjects (set force=true to import anyway)",
            ));
        }
        self.store.update_global(|g| {
            g.mode = Some(mode.clone());
            Ok(())
        })?;
        Ok(json!({"mode": mode}))
    }

    pub fn subject_mode(&self, subject: &str, default_to_global: bool) -> Result<Value> {
        let doc = self.store.subject(subject)?;
        match doc.mode {
            Some(m) => Ok(json!({"mode": m})),
            None if default_to_global => self.global_mode(),
            None => Err(RegistryError::subject_level_mode_not_configured(subject)),
        }
    }

    pub fn set_subject_mode(&self, subject: &str, mode: Option<&str>) -> Result<Value> {
        let mode = parse_mode(mode)?;
        self.store.update_subject(subject, |s| {
            s.mode = Some(mode.clone());
            Ok(())
        })?;
        Ok(json!({"mode": mode}))
    }

    pub fn delete_subject_mode(&self, subject: &str) -> Result<Value> {
        let previous = self.store.update_subject(subject, |s| {
            s.mode
                .take()
                .ok_or_else(|| RegistryError::subject_not_found(subject))
        })?;
        Ok(json!({"mode": previous}))
    }
}

fn parse_level(level: Option<&str>) -> Result<Level> {
    level
        .and_then(Level::parse)
        .ok_or_else(RegistryError::invalid_compatibility_level)
}

fn parse_mode(mode: Option<&str>) -> Result<String> {
    let m = mode.unwrap_or("").to_ascii_uppercase();
    if MODES.contains(&m.as_str()) {
        Ok(m)
    } else {
        Err(RegistryError::invalid_mode(mode.unwrap_or("")))
    }
}
