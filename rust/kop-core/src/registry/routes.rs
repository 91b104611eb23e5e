//! Confluent's REST paths: a request becomes an `Action` on the registry and the `Access`
//! it needs (authorization is decided in `http.rs`, before the action runs).

use serde_json::{json, Value};

use super::compat::SUPPORTED_TYPES;
use super::error::{RegistryError, Result};
use super::service::{Registry, Submitted, VersionRef};
use crate::auth::acl::Operation;

/// One parsed HTTP request.
#[derive(Debug, Default)]
pub struct Request {
    pub method: String,
    /// Percent-decoded segments of the path.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    fn flag(&self, name: &str) -> bool {
        self.query
            .iter()
            .any(|(k, v)| k == name && v.eq_ignore_ascii_case("true"))
    }
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What an action needs to be allowed (see docs/schema-registry.md, Authorization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Any authenticated client.
    Anyone,
    Cluster(Operation),
    /// `op` on the topic the subject belongs to (`topic_of`).
    Subject(String, Operation),
    /// DESCRIBE on a subject using the schema (on the cluster when none does).
    SchemaId(i64),
    /// Lists only the subjects the client may DESCRIBE.
    SubjectList,
}

#[derive(Debug)]
pub enum Action {
    Root,
    Types,
    /// With the `format` asked for.
    SchemaById(i64, Option<String>),
    SchemaTextById(i64),
    VersionsOfId(i64),
    SubjectsOfId(i64),
    Subjects {
        deleted: bool,
        prefix: String,
    },
    Versions {
        subject: String,
        deleted: bool,
    },
    Register {
        subject: String,
        body: Submitted,
    },
    Version {
        subject: String,
        version: VersionRef,
        deleted: bool,
        format: Option<String>,
    },
    VersionSchema {
        subject: String,
        version: VersionRef,
        deleted: bool,
    },
    ReferencedBy {
        subject: String,
        version: VersionRef,
    },
    DeleteVersion {
        subject: String,
        version: VersionRef,
        permanent: bool,
    },
    Lookup {
        subject: String,
        body: Submitted,
        deleted: bool,
    },
    DeleteSubject {
        subject: String,
        permanent: bool,
    },
    Compatibility {
        subject: String,
        version: Option<VersionRef>,
        body: Submitted,
        verbose: bool,
    },
    GlobalConfig,
    SetGlobalConfig(Option<String>),
    DeleteGlobalConfig,
    SubjectConfig {
        subject: String,
        default_to_global: bool,
    },
    SetSubjectConfig(String, Option<String>),
    DeleteSubjectConfig(String),
    GlobalMode,
    SetGlobalMode {
        mode: Option<String>,
        force: bool,
    },
    SubjectMode {
        subject: String,
        default_to_global: bool,
    },
    SetSubjectMode(String, Option<String>),
    DeleteSubjectMode(String),
}

/// A reply body: JSON, or a raw schema text.
#[derive(Debug, PartialEq)]
pub enum Reply {
    Json(Value),
    Text(String),
}

/// The topic whose ACLs cover a subject: TopicNameStrategy subjects (`<topic>-key`,
/// `<topic>-value`) belong to their topic; any other subject is checked under its own name.
pub fn topic_of(subject: &str) -> &str {
    subject
        .strip_suffix("-value")
        .or_else(|| subject.strip_suffix("-key"))
        .filter(|t| !t.is_empty())
        .unwrap_or(subject)
}

fn body<T: serde::de::DeserializeOwned + Default>(req: &Request) -> Result<T> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&req.body).map_err(RegistryError::bad_request)
}

#[derive(Default, serde::Deserialize)]
struct ConfigBody {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

#[derive(Default, serde::Deserialize)]
struct ModeBody {
    mode: Option<String>,
}

fn id(s: &str) -> Result<i64> {
    s.parse()
        .map_err(|_| RegistryError::not_found(&format!("schema id {s}")))
}

/// Maps a request onto an action and the access it needs.
pub fn route(req: &Request) -> Result<(Action, Access)> {
    use Operation::{AlterConfigs, Describe, DescribeConfigs, Write};
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    let deleted = req.flag("deleted");
    let subj = |s: &str, op| Access::Subject(s.to_string(), op);
    let config_level = |req: &Request| -> Result<Option<String>> {
        let b: ConfigBody = body(req)?;
        Ok(b.compatibility.or(b.compatibility_level))
    };
    Ok(match (m, segs.as_slice()) {
        ("GET", []) => (Action::Root, Access::Anyone),
        ("GET", ["schemas", "types"]) => (Action::Types, Access::Anyone),
        ("GET", ["schemas", "ids", i]) => (
            Action::SchemaById(id(i)?, req.param("format").map(String::from)),
            Access::SchemaId(id(i)?),
        ),
        ("GET", ["schemas", "ids", i, "schema"]) => {
            (Action::SchemaTextById(id(i)?), Access::SchemaId(id(i)?))
        }
        ("GET", ["schemas", "ids", i, "versions"]) => {
            (Action::VersionsOfId(id(i)?), Access::SchemaId(id(i)?))
        }
        ("GET", ["schemas", "ids", i, "subjects"]) => {
            (Action::SubjectsOfId(id(i)?), Access::SchemaId(id(i)?))
        }
        ("GET", ["subjects"]) => (
            Action::Subjects {
                deleted,
                prefix: req.param("subjectPrefix").unwrap_or("").to_string(),
            },
            Access::SubjectList,
        ),
        ("GET", ["subjects", s, "versions"]) => (
            Action::Versions {
                subject: s.to_string(),
                deleted,
            },
            subj(s, Describe),
        ),
        ("POST", ["subjects", s, "versions"]) => (
            Action::Register {
                subject: s.to_string(),
                body: body(req)?,
            },
            subj(s, Write),
        ),
        ("GET", ["subjects", s, "versions", v]) => (
            Action::Version {
                subject: s.to_string(),
                version: VersionRef::parse(v)?,
                deleted,
                format: req.param("format").map(String::from),
            },
            subj(s, Describe),
        ),
        ("GET", ["subjects", s, "versions", v, "schema"]) => (
            Action::VersionSchema {
                subject: s.to_string(),
                version: VersionRef::parse(v)?,
                deleted,
            },
            subj(s, Describe),
        ),
        ("GET", ["subjects", s, "versions", v, "referencedby"]) => (
            Action::ReferencedBy {
                subject: s.to_string(),
                version: VersionRef::parse(v)?,
            },
            subj(s, Describe),
        ),
        ("DELETE", ["subjects", s, "versions", v]) => (
            Action::DeleteVersion {
                subject: s.to_string(),
                version: VersionRef::parse(v)?,
                permanent: req.flag("permanent"),
            },
            subj(s, Write),
        ),
        ("POST", ["subjects", s]) => (
            Action::Lookup {
                subject: s.to_string(),
                body: body(req)?,
                deleted,
            },
            subj(s, Describe),
        ),
        ("DELETE", ["subjects", s]) => (
            Action::DeleteSubject {
                subject: s.to_string(),
                permanent: req.flag("permanent"),
            },
            subj(s, Write),
        ),
        ("POST", ["compatibility", "subjects", s, "versions", rest @ ..]) if rest.len() <= 1 => (
            Action::Compatibility {
                subject: s.to_string(),
                version: rest.first().map(|v| VersionRef::parse(v)).transpose()?,
                body: body(req)?,
                verbose: req.flag("verbose"),
            },
            subj(s, Describe),
        ),
        ("GET", ["config"]) => (Action::GlobalConfig, Access::Cluster(DescribeConfigs)),
        ("PUT", ["config"]) => (
            Action::SetGlobalConfig(config_level(req)?),
            Access::Cluster(AlterConfigs),
        ),
        ("DELETE", ["config"]) => (Action::DeleteGlobalConfig, Access::Cluster(AlterConfigs)),
        ("GET", ["config", s]) => (
            Action::SubjectConfig {
                subject: s.to_string(),
                default_to_global: req.flag("defaultToGlobal"),
            },
            subj(s, DescribeConfigs),
        ),
        ("PUT", ["config", s]) => (
            Action::SetSubjectConfig(s.to_string(), config_level(req)?),
            subj(s, AlterConfigs),
        ),
        ("DELETE", ["config", s]) => (
            Action::DeleteSubjectConfig(s.to_string()),
            subj(s, AlterConfigs),
        ),
        ("GET", ["mode"]) => (Action::GlobalMode, Access::Cluster(DescribeConfigs)),
        ("PUT", ["mode"]) => (
            Action::SetGlobalMode {
                mode: body::<ModeBody>(req)?.mode,
                force: req.flag("force"),
            },
            Access::Cluster(AlterConfigs),
        ),
        ("GET", ["mode", s]) => (
            Action::SubjectMode {
                subject: s.to_string(),
                default_to_global: req.flag("defaultToGlobal"),
            },
            subj(s, DescribeConfigs),
        ),
        ("PUT", ["mode", s]) => (
            Action::SetSubjectMode(s.to_string(), body::<ModeBody>(req)?.mode),
            subj(s, AlterConfigs),
        ),
        ("DELETE", ["mode", s]) => (
            Action::DeleteSubjectMode(s.to_string()),
            subj(s, AlterConfigs),
        ),
        (_, ["schemas" | "subjects" | "config" | "mode" | "compatibility", ..])
            if !matches!(m, "GET" | "POST" | "PUT" | "DELETE") =>
        {
            return Err(RegistryError::method_not_allowed())
        }
        _ => {
            return Err(RegistryError::not_found(&format!(
                "{m} /{}",
                segs.join("/")
            )))
        }
    })
}

/// Runs an action (blocking: it reads and writes documents).
pub fn execute(reg: &Registry, action: Action) -> Result<Reply> {
    let j = |v: Result<Value>| v.map(Reply::Json);
    match action {
        Action::Root => Ok(Reply::Json(json!({}))),
        Action::Types => Ok(Reply::Json(json!(SUPPORTED_TYPES))),
        Action::SchemaById(id, format) => j(reg.schema_by_id(id, format.as_deref())),
        Action::SchemaTextById(id) => {
            let v = reg.schema_by_id(id, None)?;
            Ok(Reply::Text(
                v["schema"].as_str().unwrap_or_default().to_string(),
            ))
        }
        Action::VersionsOfId(id) => {
            reg.schema_by_id(id, None)?;
            let uses = reg.uses_of(id, false)?;
            let list: Vec<Value> = uses
                .into_iter()
                .map(|(s, v)| json!({"subject": s, "version": v}))
                .collect();
            Ok(Reply::Json(json!(list)))
        }
        Action::SubjectsOfId(id) => {
            reg.schema_by_id(id, None)?;
            let mut subjects: Vec<String> = reg
                .uses_of(id, false)?
                .into_iter()
                .map(|(s, _)| s)
                .collect();
            subjects.dedup();
            Ok(Reply::Json(json!(subjects)))
        }
        Action::Subjects { deleted, prefix } => {
            Ok(Reply::Json(json!(reg.subjects(deleted, &prefix)?)))
        }
        Action::Versions { subject, deleted } => j(reg.versions(&subject, deleted)),
        Action::Register { subject, body } => j(reg.register(&subject, &body)),
        Action::Version {
            subject,
            version,
            deleted,
            format,
        } => j(reg.version(&subject, version, deleted, format.as_deref())),
        Action::VersionSchema {
            subject,
            version,
            deleted,
        } => reg
            .version_schema(&subject, version, deleted)
            .map(Reply::Text),
        Action::ReferencedBy { subject, version } => {
            Ok(Reply::Json(json!(reg.referenced_by(&subject, version)?)))
        }
        Action::DeleteVersion {
            subject,
            version,
            permanent,
        } => j(reg.delete_version(&subject, version, permanent)),
        Action::Lookup {
            subject,
            body,
            deleted,
        } => j(reg.lookup(&subject, &body, deleted)),
        Action::DeleteSubject { subject, permanent } => j(reg.delete_subject(&subject, permanent)),
        Action::Compatibility {
            subject,
            version,
            body,
            verbose,
        } => j(reg.test_compatibility(&subject, version, &body, verbose)),
        Action::GlobalConfig => j(reg.global_config()),
        Action::SetGlobalConfig(level) => j(reg.set_global_config(level.as_deref())),
        Action::DeleteGlobalConfig => j(reg.delete_global_config()),
        Action::SubjectConfig {
            subject,
            default_to_global,
        } => j(reg.subject_config(&subject, default_to_global)),
        Action::SetSubjectConfig(subject, level) => {
            j(reg.set_subject_config(&subject, level.as_deref()))
        }
        Action::DeleteSubjectConfig(subject) => j(reg.delete_subject_config(&subject)),
        Action::GlobalMode => j(reg.global_mode()),
        Action::SetGlobalMode { mode, force } => j(reg.set_global_mode(mode.as_deref(), force)),
        Action::SubjectMode {
            subject,
            default_to_global,
        } => j(reg.subject_mode(&subject, default_to_global)),
        Action::SetSubjectMode(subject, mode) => j(reg.set_subject_mode(&subject, mode.as_deref())),
        Action::DeleteSubjectMode(subject) => j(reg.delete_subject_mode(&subject)),
    }
}
