//! PROTOBUF schemas: compiled by `protox` (a pure-Rust protoc; `google/protobuf/*` imports are
//! built in, other imports are the schemas the references name) into `prost-reflect`
//! descriptors, and compared by Confluent's Protobuf rules (docs/schema-registry.md): a removed
//! message, a changed package, a field whose number now holds another wire type, kind or named
//! type, required fields added or removed, oneof changes, and a numeric field made repeated (or
//! back) are incompatible; added and removed optional fields, renames, enums and new messages are
//! not. A schema is `.proto` text or, as confluent-kafka's serializers send it, a base64
//! `FileDescriptorProto`.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use prost::Message;
use prost_reflect::{Cardinality, DescriptorPool, FieldDescriptor, FileDescriptor, Kind};
use protox::file::{File, FileResolver, GoogleFileResolver};

use super::error::{RegistryError, Result};

/// The file name a `.proto` text is compiled under (a base64 descriptor keeps its own).
const MAIN_FILE: &str = "kop-registry-schema.proto";

/// A compiled schema: its file in a pool holding its imports.
#[derive(Debug)]
pub struct ProtoSchema {
    file: FileDescriptor,
}

/// A schema text as a `FileDescriptorProto`, when it is one encoded in base64.
fn as_descriptor(text: &str) -> Option<prost_types::FileDescriptorProto> {
    let t = text.trim();
    if t.is_empty() || t.contains(|c: char| c.is_whitespace() || c == ';') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(t).ok()?;
    prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// Opens the submitted schema and the referenced ones by import name.
struct Sources {
    files: HashMap<String, String>,
    google: GoogleFileResolver,
}

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> std::result::Result<File, protox::Error> {
        let Some(text) = self.files.get(name) else {
            return self.google.open_file(name);
        };
        match as_descriptor(text) {
            Some(mut d) => {
                // An import is known by the name its reference gives it.
                d.name = Some(name.to_string());
                Ok(File::from_file_descriptor_proto(d))
            }
            None => File::from_source(name, text),
        }
    }
}

/// Compiles `text` with `referenced` (import name, schema text) and returns it with its stored
/// form (the text as submitted, trimmed).
pub fn parse(text: &str, referenced: &[(String, String)]) -> Result<(ProtoSchema, String)> {
    let text = text.trim();
    let name = match as_descriptor(text) {
        Some(d) => d.name.filter(|n| !n.is_empty()).unwrap_or(MAIN_FILE.into()),
        None => MAIN_FILE.to_string(),
    };
    let mut files: HashMap<String, String> = referenced.iter().cloned().collect();
    files.insert(name.clone(), text.to_string());
    let sources = Sources {
        files,
        google: GoogleFileResolver::new(),
    };
    let mut compiler = protox::Compiler::with_file_resolver(sources);
    compiler.include_imports(true);
    compiler
        .open_file(&name)
        .map_err(|e| RegistryError::invalid_schema(format!("Invalid protobuf schema: {e}")))?;
    let pool: DescriptorPool = compiler.descriptor_pool();
    let file = pool
        .get_file_by_name(&name)
        .ok_or_else(|| RegistryError::invalid_schema("the protobuf schema compiled to no file"))?;
    Ok((ProtoSchema { file }, text.to_string()))
}

impl ProtoSchema {
    /// The schema as a base64 `FileDescriptorProto` (`?format=serialized`).
    pub fn serialized(&self) -> String {
        let bytes = self.file.file_descriptor_proto().encode_to_vec();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// The wire encodings a scalar may change between (Confluent's compatible scalar groups).
fn wire_group(kind: &Kind) -> Option<u8> {
    Some(match kind {
        Kind::Int32 | Kind::Uint32 | Kind::Int64 | Kind::Uint64 | Kind::Bool => 0,
        Kind::Sint32 | Kind::Sint64 => 1,
        Kind::Fixed32 | Kind::Sfixed32 => 2,
        Kind::Fixed64 | Kind::Sfixed64 => 3,
        Kind::String | Kind::Bytes => 4,
        Kind::Float => 5,
        Kind::Double => 6,
        Kind::Message(_) | Kind::Enum(_) => return None,
    })
}

/// A real (not proto3-`optional`) oneof's name.
fn oneof_of(f: &FieldDescriptor) -> Option<String> {
    f.containing_oneof()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_string())
}

fn length_delimited(kind: &Kind) -> bool {
    matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

/// Why data written with `writer` may not be read with `reader` (or the reverse: Confluent's
/// Protobuf differences are the same both ways but for required fields, which fail both).
pub fn incompatibilities(writer: &ProtoSchema, reader: &ProtoSchema) -> Vec<String> {
    let (old, new) = (&writer.file, &reader.file);
    let mut out = Vec::new();
    if old.package_name() != new.package_name() {
        out.push(format!(
            "PACKAGE_CHANGED: package '{}' became '{}'",
            old.package_name(),
            new.package_name()
        ));
    }
    let new_messages: HashMap<String, prost_reflect::MessageDescriptor> = new
        .parent_pool()
        .all_messages()
        .filter(|m| m.parent_file().name() == new.name())
        .map(|m| (m.full_name().to_string(), m))
        .collect();
    for om in old.parent_pool().all_messages() {
        if om.parent_file().name() != old.name() || om.is_map_entry() {
            continue;
        }
        let Some(nm) = new_messages.get(om.full_name()) else {
            out.push(format!(
                "MESSAGE_REMOVED: message {} was removed",
                om.full_name()
            ));
            continue;
        };
        let at = om.full_name();
        let new_fields: HashMap<u32, FieldDescriptor> =
            nm.fields().map(|f| (f.number(), f)).collect();
        // Fields that were outside a oneof (or in another one) and share a new oneof.
        let mut moved_into: HashMap<String, Vec<u32>> = HashMap::new();
        for of in om.fields() {
            let Some(nf) = new_fields.get(&of.number()) else {
                if of.cardinality() == Cardinality::Required {
                    out.push(format!("REQUIRED_FIELD_REMOVED: {at}.{}", of.name()));
                } else if let Some(o) = oneof_of(&of) {
                    out.push(format!(
                        "ONEOF_FIELD_REMOVED: {at}.{} left oneof {o}",
                        of.name()
                    ));
                }
                continue;
            };
            field_changes(at, &of, nf, &mut out);
            if let Some(o) = oneof_of(nf) {
                if oneof_of(&of).as_ref() != Some(&o) {
                    moved_into.entry(o).or_default().push(of.number());
                }
            }
        }
        let old_numbers: HashSet<u32> = om.fields().map(|f| f.number()).collect();
        for (oneof, moved) in moved_into {
            let others_existed = nm
                .oneofs()
                .filter(|o| o.name() == oneof)
                .flat_map(|o| o.fields().collect::<Vec<_>>())
                .any(|f| old_numbers.contains(&f.number()) && !moved.contains(&f.number()));
            if moved.len() > 1 {
                out.push(format!(
                    "MULTIPLE_FIELDS_MOVED_TO_ONEOF: {at} fields {moved:?} moved into oneof {oneof}"
                ));
            } else if others_existed {
                out.push(format!(
                    "FIELD_MOVED_TO_EXISTING_ONEOF: {at} field {moved:?} moved into oneof {oneof}"
                ));
            }
        }
        for nf in nm.fields() {
            if !old_numbers.contains(&nf.number()) && nf.cardinality() == Cardinality::Required {
                out.push(format!("REQUIRED_FIELD_ADDED: {at}.{}", nf.name()));
            }
        }
    }
    out
}

/// The differences of one field (same number) between two versions of a message.
fn field_changes(at: &str, of: &FieldDescriptor, nf: &FieldDescriptor, out: &mut Vec<String>) {
    let name = of.name();
    let (ok, nk) = (of.kind(), nf.kind());
    if of.is_map() != nf.is_map() {
        out.push(format!("FIELD_KIND_CHANGED: {at}.{name} map changed"));
        return;
    }
    match (&ok, &nk) {
        (Kind::Message(a), Kind::Message(b)) => {
            if !of.is_map() && a.full_name() != b.full_name() {
                out.push(format!(
                    "FIELD_NAMED_TYPE_CHANGED: {at}.{name} type {} became {}",
                    a.full_name(),
                    b.full_name()
                ));
            }
        }
        (Kind::Enum(a), Kind::Enum(b)) => {
            if a.full_name() != b.full_name() {
                out.push(format!(
                    "FIELD_NAMED_TYPE_CHANGED: {at}.{name} enum {} became {}",
                    a.full_name(),
                    b.full_name()
                ));
            }
        }
        _ => match (wire_group(&ok), wire_group(&nk)) {
            (Some(a), Some(b)) if a != b => out.push(format!(
                "FIELD_SCALAR_KIND_CHANGED: {at}.{name} type {ok:?} became {nk:?}"
            )),
            (Some(_), Some(_)) => {}
            _ => out.push(format!(
                "FIELD_KIND_CHANGED: {at}.{name} kind {ok:?} became {nk:?}"
            )),
        },
    }
    let (oc, nc) = (of.cardinality(), nf.cardinality());
    if nc == Cardinality::Required && oc != Cardinality::Required {
        out.push(format!("REQUIRED_FIELD_ADDED: {at}.{name} became required"));
    } else if oc == Cardinality::Required && nc != Cardinality::Required {
        out.push(format!(
            "REQUIRED_FIELD_REMOVED: {at}.{name} is no longer required"
        ));
    }
    if (oc == Cardinality::Repeated) != (nc == Cardinality::Repeated)
        && !of.is_map()
        && !(length_delimited(&ok) && length_delimited(&nk))
    {
        out.push(format!(
            "FIELD_NUMERIC_LABEL_CHANGED: {at}.{name} changed between repeated and singular"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(body: &str) -> ProtoSchema {
        let text = format!("syntax = \"proto3\";\npackage kop.test;\n{body}");
        parse(&text, &[]).unwrap().0
    }

    /// Backward: the new schema reads data of the old one.
    fn backward(old: &str, new: &str) -> Vec<String> {
        incompatibilities(&proto(old), &proto(new))
    }

    #[test]
    fn confluent_protobuf_rules() {
        let v1 = "message Order { int64 id = 1; string note = 2; }";
        let ok = |new: &str| assert_eq!(backward(v1, new), Vec::<String>::new(), "{new}");
        let bad = |new: &str, what: &str| {
            let p = backward(v1, new);
            assert!(p.iter().any(|m| m.starts_with(what)), "{new}: {p:?}");
        };
        ok("message Order { int64 id = 1; string note = 2; double total = 3; }");
        ok("message Order { int64 id = 1; }");
        ok("message Order { int64 ident = 1; string note = 2; }");
        ok("message Order { int32 id = 1; bytes note = 2; }");
        ok("message Order { int64 id = 1; repeated string note = 2; } message Extra {}");
        bad(
            "message Order { string id = 1; string note = 2; }",
            "FIELD_SCALAR_KIND_CHANGED",
        );
        bad(
            "message Order { sint64 id = 1; string note = 2; }",
            "FIELD_SCALAR_KIND_CHANGED",
        );
        bad("message Other { int64 id = 1; }", "MESSAGE_REMOVED");
        bad(
            "message Order { repeated int64 id = 1; string note = 2; }",
            "FIELD_NUMERIC_LABEL_CHANGED",
        );
        bad(
            "message Order { M id = 1; string note = 2; } message M {}",
            "FIELD_KIND_CHANGED",
        );
        bad(
            "message Order { oneof o { int64 id = 1; string note = 2; } }",
            "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
        );
        let in_oneof = "message Order { oneof o { int64 id = 1; string note = 2; } }";
        assert!(
            backward(in_oneof, "message Order { oneof o { int64 id = 1; } }")
                .iter()
                .any(|m| m.starts_with("ONEOF_FIELD_REMOVED"))
        );
        let other_package = parse(
            "syntax = \"proto3\"; package other; message Order { int64 id = 1; }",
            &[],
        )
        .unwrap()
        .0;
        assert!(incompatibilities(&proto(v1), &other_package)
            .iter()
            .any(|m| m.starts_with("PACKAGE_CHANGED")));
        let p2 = |body: &str| {
            parse(
                &format!("syntax = \"proto2\"; package kop.test; {body}"),
                &[],
            )
            .unwrap()
            .0
        };
        let opt = p2("message R { optional int32 a = 1; }");
        let req = p2("message R { optional int32 a = 1; required int32 b = 2; }");
        assert!(!incompatibilities(&opt, &req).is_empty());
        assert!(!incompatibilities(&req, &opt).is_empty());
    }

    #[test]
    fn imports_references_and_descriptors() {
        let dep = "syntax = \"proto3\"; package kop.dep; message Money { int64 cents = 1; }";
        let main = "syntax = \"proto3\"; package kop.test; import \"dep.proto\"; \
                    import \"google/protobuf/timestamp.proto\"; \
                    message Order { kop.dep.Money total = 1; google.protobuf.Timestamp at = 2; }";
        let refs = vec![("dep.proto".to_string(), dep.to_string())];
        let (schema, stored) = parse(main, &refs).unwrap();
        assert_eq!(stored, main);
        assert!(parse(main, &[]).is_err());
        assert!(parse("message {", &[]).is_err());
        // The base64 descriptor form parses to the same messages, and a dependency may be one.
        let encoded = schema.serialized();
        let dep_encoded = parse(dep, &[]).unwrap().0.serialized();
        let refs = vec![("dep.proto".to_string(), dep_encoded)];
        let (again, stored) = parse(&encoded, &refs).unwrap();
        assert_eq!(stored, encoded);
        assert!(incompatibilities(&schema, &again).is_empty());
    }
}
