//! JSON schemas, compared over serde_json by Confluent's JSON Schema rules
//! (docs/schema-registry.md): a reader's schema must accept every document the writer's
//! accepts. No maintained crate diffs JSON schemas by these rules (`jsonschema` validates
//! documents; `json-schema-diff` reports changes with its own notion of breaking, without
//! Confluent's open/closed content models), so the walk is here: types narrowed or changed,
//! enum values removed, bounds tightened, patterns added, properties added to an open content
//! model or removed from a closed one, required properties added, `additionalProperties`
//! closed, `items`, `anyOf`/`oneOf` alternatives removed and `allOf` members added. `$ref`s
//! resolve inside the schema (`#/...`) and into referenced schemas (by reference name).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::error::{RegistryError, Result};

/// A parsed JSON schema with the referenced schemas its `$ref`s may name.
#[derive(Debug)]
pub struct JsonSchema {
    root: Value,
    referenced: HashMap<String, Value>,
}

const TYPES: &[&str] = &[
    "null", "boolean", "object", "array", "number", "integer", "string",
];

fn invalid(why: impl std::fmt::Display) -> RegistryError {
    RegistryError::invalid_schema(format!("Invalid JSON schema: {why}"))
}

/// Checks the keywords the rules read, recursively, so that a malformed schema is refused.
fn check_shape(v: &Value, depth: usize) -> Result<()> {
    if depth > 64 {
        return Err(invalid("nested too deep"));
    }
    let Some(o) = v.as_object() else {
        return match v {
            Value::Bool(_) => Ok(()),
            _ => Err(invalid("a schema is an object or a boolean")),
        };
    };
    if let Some(t) = o.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for n in names {
            if !n.as_str().is_some_and(|s| TYPES.contains(&s)) {
                return Err(invalid(format!("unknown type {n}")));
            }
        }
    }
    if o.get("required")
        .is_some_and(|r| !r.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
    {
        return Err(invalid("required is an array of property names"));
    }
    if o.get("enum").is_some_and(|e| !e.is_array()) {
        return Err(invalid("enum is an array"));
    }
    for key in ["properties", "patternProperties", "definitions", "$defs"] {
        match o.get(key) {
            None => {}
            Some(Value::Object(m)) => {
                for s in m.values() {
                    check_shape(s, depth + 1)?;
                }
            }
            Some(_) => return Err(invalid(format!("{key} is an object"))),
        }
    }
    for key in ["additionalProperties", "items", "not", "additionalItems"] {
        if let Some(s) = o.get(key) {
            match s {
                Value::Array(a) if key == "items" => {
                    for s in a {
                        check_shape(s, depth + 1)?;
                    }
                }
                s => check_shape(s, depth + 1)?,
            }
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(s) = o.get(key) {
            let a = s
                .as_array()
                .ok_or_else(|| invalid(format!("{key} is an array")))?;
            for s in a {
                check_shape(s, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Parses a schema and the schemas it references (reference name, text); the stored form is
/// compact JSON.
pub fn parse(text: &str, referenced: &[(String, String)]) -> Result<(JsonSchema, String)> {
    let root: Value = serde_json::from_str(text).map_err(invalid)?;
    check_shape(&root, 0)?;
    let mut refs = HashMap::new();
    for (name, text) in referenced {
        let v: Value = serde_json::from_str(text).map_err(invalid)?;
        refs.insert(name.clone(), v);
    }
    let stored = root.to_string();
    Ok((
        JsonSchema {
            root,
            referenced: refs,
        },
        stored,
    ))
}

/// Why a reader with schema `reader` may reject a document valid under `writer`.
pub fn incompatibilities(writer: &JsonSchema, reader: &JsonSchema) -> Vec<String> {
    let mut walk = Walk {
        old: writer,
        new: reader,
        out: Vec::new(),
        depth: 0,
    };
    walk.compare("#", &writer.root, &reader.root);
    walk.out
}

struct Walk<'a> {
    old: &'a JsonSchema,
    new: &'a JsonSchema,
    out: Vec<String>,
    depth: usize,
}

/// `true`, `{}` and the like: accepts every document.
fn accepts_all(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(o) => o.keys().all(|k| {
            matches!(
                k.as_str(),
                "title" | "description" | "default" | "examples" | "$comment" | "$id" | "$schema"
            )
        }),
        _ => false,
    }
}

fn types(o: &Map<String, Value>) -> Option<Vec<&str>> {
    match o.get("type")? {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(a) => Some(a.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// Resolves `$ref` inside `schema` (`#/a/b`) or into a referenced schema (`name#/a/b`).
fn resolve<'v>(schema: &'v JsonSchema, v: &'v Value) -> &'v Value {
    let mut v = v;
    for _ in 0..32 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let (doc, pointer) = r.split_once('#').unwrap_or((r, ""));
        let base = if doc.is_empty() {
            &schema.root
        } else {
            match schema.referenced.get(doc) {
                Some(b) => b,
                None => return v,
            }
        };
        match base.pointer(pointer) {
            Some(target) => v = target,
            None => return v,
        }
    }
    v
}

const EMPTY: Value = Value::Bool(true);

impl Walk<'_> {
    fn problem(&mut self, at: &str, what: &str, detail: String) {
        self.out.push(format!("{what} at {at}: {detail}"));
    }

    /// Whether `new` accepts everything `old` accepts (without recording why not).
    fn fits(&mut self, at: &str, old: &Value, new: &Value) -> bool {
        let before = self.out.len();
        self.compare(at, old, new);
        let fits = self.out.len() == before;
        self.out.truncate(before);
        fits
    }

    fn compare(&mut self, at: &str, old: &Value, new: &Value) {
        if self.depth > 64 {
            return;
        }
        self.depth += 1;
        let (old, new) = (resolve(self.old, old), resolve(self.new, new));
        self.compare_resolved(at, old, new);
        self.depth -= 1;
    }

    fn compare_resolved(&mut self, at: &str, old: &Value, new: &Value) {
        if accepts_all(new) || old == &Value::Bool(false) {
            return;
        }
        if new == &Value::Bool(false) {
            return self.problem(
                at,
                "SCHEMA_NARROWED",
                "the new schema accepts nothing".into(),
            );
        }
        let empty = Map::new();
        let o = old.as_object().unwrap_or(&empty);
        let Some(n) = new.as_object() else { return };
        self.compare_types(at, o, n);
        self.compare_values(at, o, n);
        self.compare_bounds(at, o, n);
        self.compare_object(at, o, n);
        self.compare_array(at, o, n);
        self.compare_combined(at, o, n);
    }

    fn compare_types(&mut self, at: &str, o: &Map<String, Value>, n: &Map<String, Value>) {
        let Some(nt) = types(n) else { return };
        let ot = types(o).unwrap_or_else(|| TYPES.to_vec());
        let lost: Vec<&str> = ot
            .iter()
            .copied()
            .filter(|t| !(nt.contains(t) || (*t == "integer" && nt.contains(&"number"))))
            .collect();
        if lost.is_empty() {
            return;
        }
        let narrowed = nt.iter().all(|t| ot.contains(t));
        let what = if narrowed {
            "TYPE_NARROWED"
        } else {
            "TYPE_CHANGED"
        };
        self.problem(at, what, format!("type {ot:?} became {nt:?}"));
    }

    fn compare_values(&mut self, at: &str, o: &Map<String, Value>, n: &Map<String, Value>) {
        if let Some(Value::Array(ne)) = n.get("enum") {
            match o.get("enum") {
                Some(Value::Array(oe)) => {
                    if oe.iter().any(|v| !ne.contains(v)) {
                        let what = if ne.iter().all(|v| oe.contains(v)) {
                            "ENUM_ARRAY_NARROWED"
                        } else {
                            "ENUM_ARRAY_CHANGED"
                        };
                        self.problem(at, what, "enum values were removed".into());
                    }
                }
                _ => match o.get("const") {
                    Some(c) if ne.contains(c) => {}
                    _ => self.problem(at, "ENUM_ARRAY_NARROWED", "an enum was added".into()),
                },
            }
        }
        if let Some(nc) = n.get("const") {
            let same = o.get("const") == Some(nc)
                || o.get("enum") == Some(&Value::Array(vec![nc.clone()]));
            if !same {
                self.problem(at, "CONST_CHANGED", "a const was added or changed".into());
            }
        }
        if let Some(p) = n.get("pattern") {
            match o.get("pattern") {
                Some(q) if q == p => {}
                Some(_) => self.problem(at, "PATTERN_CHANGED", format!("pattern {p}")),
                None => self.problem(at, "PATTERN_ADDED", format!("pattern {p}")),
            }
        }
        if n.get("uniqueItems") == Some(&Value::Bool(true))
            && o.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.problem(at, "UNIQUE_ITEMS_ADDED", "items must now be unique".into());
        }
        if let Some(nn) = n.get("not") {
            if o.get("not") != Some(nn) {
                self.problem(
                    at,
                    "NOT_TYPE_CHANGED",
                    "a not schema was added or changed".into(),
                );
            }
        }
        for key in ["dependencies", "dependentRequired", "dependentSchemas"] {
            if let Some(Value::Object(nd)) = n.get(key) {
                let od = o.get(key).and_then(Value::as_object);
                if nd.iter().any(|(k, v)| od.and_then(|d| d.get(k)) != Some(v)) {
                    self.problem(
                        at,
                        "DEPENDENCY_ADDED",
                        format!("{key} were added or changed"),
                    );
                }
            }
        }
    }

    /// Upper bounds may only grow, lower bounds only shrink.
    fn compare_bounds(&mut self, at: &str, o: &Map<String, Value>, n: &Map<String, Value>) {
        const UPPER: &[&str] = &[
            "maxLength",
            "maxItems",
            "maxProperties",
            "maximum",
            "exclusiveMaximum",
        ];
        const LOWER: &[&str] = &[
            "minLength",
            "minItems",
            "minProperties",
            "minimum",
            "exclusiveMinimum",
        ];
        for (keys, upper) in [(UPPER, true), (LOWER, false)] {
            for key in keys {
                let Some(nv) = n.get(*key).and_then(Value::as_f64) else {
                    continue;
                };
                match o.get(*key).and_then(Value::as_f64) {
                    None => self.problem(at, "BOUND_ADDED", format!("{key} {nv} was added")),
                    Some(ov) if (upper && nv < ov) || (!upper && nv > ov) => self.problem(
                        at,
                        if upper {
                            "BOUND_DECREASED"
                        } else {
                            "BOUND_INCREASED"
                        },
                        format!("{key} {ov} became {nv}"),
                    ),
                    Some(_) => {}
                }
            }
        }
        if let Some(nm) = n.get("multipleOf").and_then(Value::as_f64) {
            let fits = o
                .get("multipleOf")
                .and_then(Value::as_f64)
                .is_some_and(|om| nm != 0.0 && (om / nm).fract() == 0.0);
            if !fits {
                self.problem(at, "MULTIPLE_OF_CHANGED", format!("multipleOf {nm}"));
            }
        }
    }

    fn compare_object(&mut self, at: &str, o: &Map<String, Value>, n: &Map<String, Value>) {
        let empty = Map::new();
        let op = o
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let np = n
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        // Where a property the schema does not name goes: absent additionalProperties is open.
        let o_extra = o.get("additionalProperties").unwrap_or(&EMPTY);
        let n_extra = n.get("additionalProperties").unwrap_or(&EMPTY);
        for (name, os) in op {
            let here = format!("{at}/properties/{name}");
            match np.get(name) {
                Some(ns) => self.compare(&here, os, ns),
                None if n_extra == &Value::Bool(false) => self.problem(
                    &here,
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    format!("property {name} was removed"),
                ),
                None => {
                    if !self.fits(&here, os, n_extra) {
                        self.problem(
                            &here,
                            "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                            format!("property {name} was removed"),
                        );
                    }
                }
            }
        }
        for (name, ns) in np {
            if op.contains_key(name) {
                continue;
            }
            let here = format!("{at}/properties/{name}");
            if o_extra == &Value::Bool(false) {
                continue;
            }
            if accepts_all(o_extra) {
                if !accepts_all(ns) {
                    self.problem(
                        &here,
                        "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                        format!("property {name} was added while any property was allowed"),
                    );
                }
            } else if !self.fits(&here, o_extra, ns) {
                self.problem(
                    &here,
                    "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    format!("property {name} was added"),
                );
            }
        }
        if n.contains_key("additionalProperties") && !accepts_all(o_extra) {
            self.compare(&format!("{at}/additionalProperties"), o_extra, n_extra);
        } else if o_extra != &Value::Bool(false) && !accepts_all(n_extra) {
            let what = if n_extra == &Value::Bool(false) {
                "ADDITIONAL_PROPERTIES_REMOVED"
            } else {
                "ADDITIONAL_PROPERTIES_NARROWED"
            };
            self.problem(at, what, "additional properties were restricted".into());
        }
        let required = |m: &Map<String, Value>| -> Vec<String> {
            m.get("required")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (or, nr) = (required(o), required(n));
        for name in nr.iter().filter(|r| !or.contains(r)) {
            let has_default = np.get(name).is_some_and(|p| p.get("default").is_some());
            if !has_default {
                self.problem(
                    at,
                    "REQUIRED_ATTRIBUTE_ADDED",
                    format!("property {name} became required"),
                );
            }
        }
    }

    fn compare_array(&mut self, at: &str, o: &Map<String, Value>, n: &Map<String, Value>) {
        let here = format!("{at}/items");
        match (o.get("items"), n.get("items")) {
            (_, None) => {}
            (Some(Value::Array(oi)), Some(Value::Array(ni))) => {
                for (i, ns) in ni.iter().enumerate() {
                    let os = oi
                        .get(i)
                        .unwrap_or(o.get("additionalItems").unwrap_or(&EMPTY));
                    self.compare(&format!("{here}/{i}"), os, ns);
                }
            }
            (Some(Value::Array(_)), Some(ns)) | (None, Some(ns)) => {
                if !accepts_all(ns) {
                    self.problem(&here, "ITEMS_NARROWED", "items were restricted".into());
                }
            }
            (Some(os), Some(ns)) => self.compare(&here, os, ns),
        }
    }

    fn compare_combined(&mut self, at: &str, o: &Map<String, Value>, n: &Map<String, Value>) {
        // Sum types: every old alternative is accepted by some new one.
        for key in ["anyOf", "oneOf"] {
            let Some(Value::Array(na)) = n.get(key) else {
                continue;
            };
            let old_alts: Vec<Value> =
                match o
                    .get(key)
                    .or(o.get(if key == "anyOf" { "oneOf" } else { "anyOf" }))
                {
                    Some(Value::Array(oa)) => oa.clone(),
                    _ => vec![Value::Object(o.clone())],
                };
            for (i, oa) in old_alts.iter().enumerate() {
                let here = format!("{at}/{key}/{i}");
                if !na.iter().any(|alt| self.fits(&here, oa, alt)) {
                    self.problem(
                        &here,
                        "SUM_TYPE_NARROWED",
                        format!("no {key} alternative accepts what it accepted"),
                    );
                }
            }
        }
        // Product types: every new member is implied by an old one.
        if let Some(Value::Array(na)) = n.get("allOf") {
            let oa: Vec<Value> = match o.get("allOf") {
                Some(Value::Array(oa)) => oa.clone(),
                _ => vec![Value::Object(o.clone())],
            };
            for (i, member) in na.iter().enumerate() {
                let here = format!("{at}/allOf/{i}");
                if !oa.iter().any(|old| self.fits(&here, old, member)) {
                    self.problem(
                        &here,
                        "PRODUCT_TYPE_EXTENDED",
                        "allOf gained a member".into(),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> JsonSchema {
        parse(text, &[]).unwrap().0
    }

    /// What a reader with `new` may reject of data written with `old` (BACKWARD).
    fn backward(old: &str, new: &str) -> Vec<String> {
        incompatibilities(&schema(old), &schema(new))
    }

    #[test]
    fn confluent_json_schema_rules() {
        let ok = |old: &str, new: &str| assert_eq!(backward(old, new), Vec::<String>::new());
        let bad = |old: &str, new: &str, what: &str| {
            let p = backward(old, new);
            assert!(
                p.iter().any(|m| m.starts_with(what)),
                "{old} -> {new}: {p:?}"
            );
        };
        let closed = r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#;
        let open = r#"{"type":"object","properties":{"a":{"type":"string"}}}"#;
        // Closed content model: an optional property may be added; removing one is not allowed.
        ok(
            closed,
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":false}"#,
        );
        bad(
            closed,
            r#"{"type":"object","properties":{},"additionalProperties":false}"#,
            "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        );
        // Open content model: the reverse.
        ok(open, r#"{"type":"object","properties":{}}"#);
        bad(
            open,
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}"#,
            "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
        );
        bad(open, closed, "ADDITIONAL_PROPERTIES_REMOVED");
        ok(closed, open);
        // Types: widening is compatible, narrowing and changing are not.
        ok(r#"{"type":"integer"}"#, r#"{"type":"number"}"#);
        ok(r#"{"type":"string"}"#, r#"{"type":["string","null"]}"#);
        bad(
            r#"{"type":"number"}"#,
            r#"{"type":"integer"}"#,
            "TYPE_CHANGED",
        );
        bad(
            r#"{"type":["string","null"]}"#,
            r#"{"type":"string"}"#,
            "TYPE_NARROWED",
        );
        bad(
            r#"{"type":"string"}"#,
            r#"{"type":"boolean"}"#,
            "TYPE_CHANGED",
        );
        // Required properties, enums, bounds, patterns.
        bad(
            open,
            r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#,
            "REQUIRED_ATTRIBUTE_ADDED",
        );
        ok(
            r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#,
            open,
        );
        ok(r#"{"enum":["x","y"]}"#, r#"{"enum":["x","y","z"]}"#);
        bad(
            r#"{"enum":["x","y"]}"#,
            r#"{"enum":["x"]}"#,
            "ENUM_ARRAY_NARROWED",
        );
        bad(
            r#"{"type":"string"}"#,
            r#"{"type":"string","maxLength":5}"#,
            "BOUND_ADDED",
        );
        ok(
            r#"{"type":"string","maxLength":5}"#,
            r#"{"type":"string","maxLength":9}"#,
        );
        bad(
            r#"{"type":"integer","minimum":1}"#,
            r#"{"type":"integer","minimum":2}"#,
            "BOUND_INCREASED",
        );
        bad(
            r#"{"type":"string"}"#,
            r#"{"type":"string","pattern":"^a"}"#,
            "PATTERN_ADDED",
        );
        // Arrays, combined types, $ref.
        bad(
            r#"{"type":"array","items":{"type":"number"}}"#,
            r#"{"type":"array","items":{"type":"integer"}}"#,
            "TYPE_CHANGED",
        );
        ok(
            r#"{"oneOf":[{"type":"string"}]}"#,
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
        );
        bad(
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
            r#"{"oneOf":[{"type":"string"}]}"#,
            "SUM_TYPE_NARROWED",
        );
        bad(
            r##"{"definitions":{"n":{"type":"number"}},"properties":{"x":{"$ref":"#/definitions/n"}}}"##,
            r##"{"definitions":{"n":{"type":"integer"}},"properties":{"x":{"$ref":"#/definitions/n"}}}"##,
            "TYPE_CHANGED",
        );
    }

    #[test]
    fn malformed_schemas_are_refused_and_references_resolve() {
        assert!(parse("{not json", &[]).is_err());
        assert!(parse("3", &[]).is_err());
        assert!(parse(r#"{"type":"strin"}"#, &[]).is_err());
        assert!(parse(r#"{"required":"a"}"#, &[]).is_err());
        let (_, stored) = parse(r#"{ "type" : "string" }"#, &[]).unwrap();
        assert_eq!(stored, r#"{"type":"string"}"#);
        let refs = |t: &str| vec![("money.json".to_string(), t.to_string())];
        let with = |t: &str| {
            parse(r#"{"properties":{"m":{"$ref":"money.json"}}}"#, &refs(t))
                .unwrap()
                .0
        };
        assert!(incompatibilities(
            &with(r#"{"type":"integer"}"#),
            &with(r#"{"type":"number"}"#)
        )
        .is_empty());
        assert!(!incompatibilities(
            &with(r#"{"type":"number"}"#),
            &with(r#"{"type":"integer"}"#)
        )
        .is_empty());
    }
}
