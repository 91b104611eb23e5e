//! Schema types and compatibility levels. AVRO is parsed and checked by the `apache-avro`
//! crate (Apache Avro's Rust implementation: its `SchemaCompatibility` is the reader/writer
//! resolution check that Confluent's Avro rules are defined by), PROTOBUF by `protobuf.rs`
//! (protox + prost-reflect) and JSON by `json_schema.rs`: see docs/schema-registry.md.

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

use super::error::{RegistryError, Result};
use super::json_schema::{self, JsonSchema};
use super::protobuf::{self, ProtoSchema};

/// The schema types this registry parses and checks (`GET /schemas/types`, Confluent's order).
pub const SUPPORTED_TYPES: &[&str] = &["JSON", "PROTOBUF", "AVRO"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    /// Confluent's default.
    pub const DEFAULT: Level = Level::Backward;

    pub fn parse(name: &str) -> Option<Level> {
        Some(match name.to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Checked against every earlier version (else the latest only).
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

/// The schema type of a request (`schemaType`, AVRO when absent), if this registry checks it.
pub fn schema_type(requested: Option<&str>) -> Result<String> {
    let t = requested.unwrap_or("AVRO").to_ascii_uppercase();
    if SUPPORTED_TYPES.contains(&t.as_str()) {
        Ok(t)
    } else {
        Err(RegistryError::invalid_schema(format!(
            "schemaType {t} is not supported by kop's schema registry (it checks {} schemas)",
            SUPPORTED_TYPES.join(", ")
        )))
    }
}

/// A schema parsed for compatibility checks.
#[derive(Debug)]
pub enum Parsed {
    Avro(Schema),
    Protobuf(ProtoSchema),
    Json(JsonSchema),
}

impl Parsed {
    fn type_name(&self) -> &'static str {
        match self {
            Parsed::Avro(_) => "AVRO",
            Parsed::Protobuf(_) => "PROTOBUF",
            Parsed::Json(_) => "JSON",
        }
    }

    /// The schema in Confluent's `format=serialized` form, where its type has one (PROTOBUF:
    /// a base64 `FileDescriptorProto`).
    pub fn serialized(&self) -> Option<String> {
        match self {
            Parsed::Protobuf(p) => Some(p.serialized()),
            _ => None,
        }
    }
}

/// Parses a schema with the schemas it references ((reference name, text), dependencies
/// first) and returns it with its stored form: compact JSON for AVRO and JSON (so whitespace
/// does not make two equal schemas different), the trimmed text for PROTOBUF.
pub fn parse(
    schema_type: &str,
    text: &str,
    referenced: &[(String, String)],
) -> Result<(Parsed, String)> {
    match schema_type {
        "AVRO" => parse_avro(text, referenced),
        "PROTOBUF" => {
            protobuf::parse(text, referenced).map(|(p, stored)| (Parsed::Protobuf(p), stored))
        }
        "JSON" => json_schema::parse(text, referenced).map(|(j, stored)| (Parsed::Json(j), stored)),
        other => Err(RegistryError::invalid_schema(format!(
            "schemaType {other} is not supported"
        ))),
    }
}

fn parse_avro(text: &str, referenced: &[(String, String)]) -> Result<(Parsed, String)> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(RegistryError::invalid_schema)?;
    let schema = if referenced.is_empty() {
        Schema::parse(&json).map_err(RegistryError::invalid_schema)?
    } else {
        let texts: Vec<String> = referenced.iter().map(|(_, t)| t.clone()).collect();
        Schema::parse_str_with_list(text, &texts)
            .map_err(RegistryError::invalid_schema)?
            .0
    };
    Ok((Parsed::Avro(schema), json.to_string()))
}

/// Why data written with `writer` may not be read with `reader`.
fn incompatibilities(writer: &Parsed, reader: &Parsed) -> Vec<String> {
    match (writer, reader) {
        (Parsed::Avro(w), Parsed::Avro(r)) => match SchemaCompatibility::can_read(w, r) {
            Ok(()) => Vec::new(),
            Err(e) => vec![e.to_string()],
        },
        (Parsed::Protobuf(w), Parsed::Protobuf(r)) => protobuf::incompatibilities(w, r),
        (Parsed::Json(w), Parsed::Json(r)) => json_schema::incompatibilities(w, r),
        (w, r) => vec![format!(
            "Incompatible because of different schema type: {} and {}",
            w.type_name(),
            r.type_name()
        )],
    }
}

/// Why `new` may not follow `earlier` (oldest first) under `level`; empty when it may.
pub fn check(level: Level, new: &Parsed, earlier: &[(i32, Parsed)]) -> Vec<String> {
    let against: &[(i32, Parsed)] = if level.transitive() {
        earlier
    } else {
        earlier.last().map_or(&[], std::slice::from_ref)
    };
    let mut problems = Vec::new();
    for (version, old) in against.iter().rev() {
        if level.backward() {
            for e in incompatibilities(old, new) {
                problems.push(format!(
                    "{{oldSchemaVersion: {version}, compatibility: '{}', description: 'The new schema cannot read data written with version {version}: {e}'}}",
                    level.name()
                ));
            }
        }
        if level.forward() {
            for e in incompatibilities(new, old) {
                problems.push(format!(
                    "{{oldSchemaVersion: {version}, compatibility: '{}', description: 'Version {version} cannot read data written with the new schema: {e}'}}",
                    level.name()
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Parsed {
        let text = format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#);
        parse("AVRO", &text, &[]).unwrap().0
    }

    const A: &str = r#"{"name":"a","type":"string"}"#;
    const B_DEFAULT: &str = r#"{"name":"b","type":"int","default":0}"#;
    const B: &str = r#"{"name":"b","type":"int"}"#;

    fn ok(level: Level, new: &Parsed, old: Vec<Parsed>) -> bool {
        let earlier: Vec<(i32, Parsed)> = old
            .into_iter()
            .enumerate()
            .map(|(i, p)| (i as i32 + 1, p))
            .collect();
        check(level, new, &earlier).is_empty()
    }

    #[test]
    fn confluent_avro_rules() {
        let v1 = || record(A);
        // A new field with a default: new readers read old data, old readers skip it.
        let with_default = record(&format!("{A},{B_DEFAULT}"));
        assert!(ok(Level::Backward, &with_default, vec![v1()]));
        assert!(ok(Level::Full, &with_default, vec![v1()]));
        // Without a default, new readers cannot read old data.
        let without = record(&format!("{A},{B}"));
        assert!(!ok(Level::Backward, &without, vec![v1()]));
        assert!(ok(Level::Forward, &without, vec![v1()]));
        assert!(!ok(Level::Full, &without, vec![v1()]));
        assert!(ok(
            Level::None,
            &record(r#"{"name":"a","type":"int"}"#),
            vec![v1()]
        ));
        // Transitive: v3 reads v2 (which has b) but not v1.
        assert!(ok(
            Level::Backward,
            &without,
            vec![v1(), record(&format!("{A},{B_DEFAULT}"))]
        ));
        assert!(!ok(
            Level::BackwardTransitive,
            &without,
            vec![v1(), record(&format!("{A},{B_DEFAULT}"))]
        ));
        // int -> long is a promotion for readers only.
        let long = record(r#"{"name":"n","type":"long"}"#);
        assert!(ok(
            Level::Backward,
            &long,
            vec![record(r#"{"name":"n","type":"int"}"#)]
        ));
        assert!(!ok(
            Level::Forward,
            &long,
            vec![record(r#"{"name":"n","type":"int"}"#)]
        ));
    }

    #[test]
    fn levels_types_and_invalid_schemas() {
        assert_eq!(Level::parse("full_transitive"), Some(Level::FullTransitive));
        assert_eq!(Level::parse("SIDEWAYS"), None);
        assert_eq!(schema_type(None).unwrap(), "AVRO");
        assert_eq!(schema_type(Some("protobuf")).unwrap(), "PROTOBUF");
        assert_eq!(schema_type(Some("XML")).unwrap_err().code, 42201);
        assert_eq!(parse("AVRO", "{not json", &[]).unwrap_err().code, 42201);
        assert_eq!(
            parse("AVRO", r#"{"type":"nope"}"#, &[]).unwrap_err().code,
            42201
        );
        let (_, stored) = parse("AVRO", "{ \"type\" : \"string\" }", &[]).unwrap();
        assert_eq!(stored, r#"{"type":"string"}"#);
    }
}
