//! The REST routing and Confluent's semantics over an in-memory store.

use std::sync::Arc;

use serde_json::{json, Value};

use super::http::{basic_credentials, parse_head};
use super::routes::{execute, route, topic_of, Access, Reply};
use super::service::Registry;
use super::store::Store;
use crate::auth::acl::Operation;
use crate::storage::MemoryDocuments;

fn registry() -> Registry {
    Registry {
        store: Store::new(Arc::new(MemoryDocuments::default())),
    }
}

/// Runs one request; Ok(JSON) or Err(error code).
fn call(reg: &Registry, method: &str, target: &str, body: Value) -> Result<Value, u32> {
    let (mut req, _, _) =
        parse_head(&format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n")).unwrap();
    if !body.is_null() {
        req.body = body.to_string().into_bytes();
    }
    let (action, _) = route(&req).map_err(|e| e.code)?;
    match execute(reg, action).map_err(|e| e.code)? {
        Reply::Json(v) => Ok(v),
        Reply::Text(t) => Ok(Value::String(t)),
    }
}

fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Order","fields":[{fields}]}}"#)
}

const ID: &str = r#"{"name":"id","type":"long"}"#;
const NOTE: &str = r#"{"name":"note","type":"string","default":""}"#;
const QTY: &str = r#"{"name":"qty","type":"int"}"#;

#[test]
fn register_read_lookup_and_ids() {
    let reg = registry();
    let v1 = record(ID);
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/orders-value/versions",
            json!({"schema": v1})
        )
        .unwrap()["id"],
        1
    );
    // The same schema again (whitespace aside): the same id and version.
    let spaced = v1.replace(',', " , ");
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/orders-value/versions",
            json!({"schema": spaced})
        )
        .unwrap(),
        json!({"id": 1, "version": 1})
    );
    // The same schema under another subject: the same id, version 1 there.
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/other/versions",
            json!({"schema": v1})
        )
        .unwrap()["id"],
        1
    );
    let v2 = record(&format!("{ID},{NOTE}"));
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/orders-value/versions",
            json!({"schema": v2})
        )
        .unwrap()["id"],
        2
    );
    assert_eq!(
        call(&reg, "GET", "/subjects", Value::Null).unwrap(),
        json!(["orders-value", "other"])
    );
    assert_eq!(
        call(&reg, "GET", "/subjects/orders-value/versions", Value::Null).unwrap(),
        json!([1, 2])
    );
    let latest = call(
        &reg,
        "GET",
        "/subjects/orders-value/versions/latest",
        Value::Null,
    )
    .unwrap();
    assert_eq!(
        (latest["version"].clone(), latest["id"].clone()),
        (json!(2), json!(2))
    );
    assert!(latest.get("schemaType").is_none());
    let by_id = call(&reg, "GET", "/schemas/ids/1", Value::Null).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(by_id["schema"].as_str().unwrap()).unwrap(),
        serde_json::from_str::<Value>(&v1).unwrap()
    );
    assert_eq!(
        call(&reg, "GET", "/schemas/ids/1/versions", Value::Null).unwrap(),
        json!([{"subject": "orders-value", "version": 1}, {"subject": "other", "version": 1}])
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/orders-value",
            json!({"schema": v2})
        )
        .unwrap()["version"],
        2
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/orders-value",
            json!({"schema": record(QTY)})
        ),
        Err(40403)
    );
    assert_eq!(
        call(&reg, "POST", "/subjects/nope", json!({"schema": v2})),
        Err(40401)
    );
    assert_eq!(
        call(&reg, "GET", "/schemas/ids/99", Value::Null),
        Err(40403)
    );
    assert_eq!(
        call(
            &reg,
            "GET",
            "/subjects/orders-value/versions/9",
            Value::Null
        ),
        Err(40402)
    );
    assert_eq!(
        call(
            &reg,
            "GET",
            "/subjects/orders-value/versions/0",
            Value::Null
        ),
        Err(42202)
    );
    assert_eq!(
        call(&reg, "GET", "/schemas/types", Value::Null).unwrap(),
        json!(["JSON", "PROTOBUF", "AVRO"])
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/p/versions",
            json!({"schema": "syntax = \"proto3\"; message {", "schemaType": "PROTOBUF"})
        ),
        Err(42201)
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/p/versions",
            json!({"schema": "{\"type\": 3}", "schemaType": "JSON"})
        ),
        Err(42201)
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/p/versions",
            json!({"schema": "{\"type\": \"nope\"}"})
        ),
        Err(42201)
    );
}

#[test]
fn compatibility_levels_and_config() {
    let reg = registry();
    call(
        &reg,
        "POST",
        "/subjects/s/versions",
        json!({"schema": record(ID)}),
    )
    .unwrap();
    // BACKWARD (the default): a new field needs a default.
    let no_default = record(&format!("{ID},{QTY}"));
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/s/versions",
            json!({"schema": no_default})
        ),
        Err(409)
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/compatibility/subjects/s/versions/latest",
            json!({"schema": no_default})
        )
        .unwrap(),
        json!({"is_compatible": false})
    );
    let verbose = call(
        &reg,
        "POST",
        "/compatibility/subjects/s/versions/latest?verbose=true",
        json!({"schema": no_default}),
    )
    .unwrap();
    assert_eq!(verbose["messages"].as_array().unwrap().len(), 1);
    assert_eq!(
        call(&reg, "GET", "/config", Value::Null).unwrap(),
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(call(&reg, "GET", "/config/s", Value::Null), Err(40408));
    assert_eq!(
        call(&reg, "GET", "/config/s?defaultToGlobal=true", Value::Null).unwrap(),
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(
        call(
            &reg,
            "PUT",
            "/config/s",
            json!({"compatibility": "FORWARD"})
        )
        .unwrap(),
        json!({"compatibility": "FORWARD"})
    );
    assert_eq!(
        call(
            &reg,
            "PUT",
            "/config/s",
            json!({"compatibility": "SIDEWAYS"})
        ),
        Err(42203)
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/s/versions",
            json!({"schema": no_default})
        )
        .unwrap()["version"],
        2
    );
    assert_eq!(
        call(&reg, "DELETE", "/config/s", Value::Null).unwrap(),
        json!({"compatibilityLevel": "FORWARD"})
    );
    assert_eq!(
        call(&reg, "PUT", "/config", json!({"compatibility": "NONE"})).unwrap(),
        json!({"compatibility": "NONE"})
    );
    let unrelated = r#"{"type":"record","name":"Other","fields":[]}"#;
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/s/versions",
            json!({"schema": unrelated})
        )
        .unwrap()["version"],
        3
    );
}

#[test]
fn deletes_and_modes() {
    let reg = registry();
    call(
        &reg,
        "POST",
        "/subjects/s/versions",
        json!({"schema": record(ID)}),
    )
    .unwrap();
    call(
        &reg,
        "POST",
        "/subjects/s/versions",
        json!({"schema": record(&format!("{ID},{NOTE}"))}),
    )
    .unwrap();
    assert_eq!(
        call(
            &reg,
            "DELETE",
            "/subjects/s/versions/1?permanent=true",
            Value::Null
        ),
        Err(40407)
    );
    assert_eq!(
        call(&reg, "DELETE", "/subjects/s/versions/1", Value::Null).unwrap(),
        json!(1)
    );
    assert_eq!(
        call(&reg, "DELETE", "/subjects/s/versions/1", Value::Null),
        Err(40406)
    );
    assert_eq!(
        call(&reg, "GET", "/subjects/s/versions", Value::Null).unwrap(),
        json!([2])
    );
    assert_eq!(
        call(
            &reg,
            "GET",
            "/subjects/s/versions?deleted=true",
            Value::Null
        )
        .unwrap(),
        json!([1, 2])
    );
    assert_eq!(
        call(&reg, "DELETE", "/subjects/s?permanent=true", Value::Null),
        Err(40405)
    );
    assert_eq!(
        call(&reg, "DELETE", "/subjects/s", Value::Null).unwrap(),
        json!([2])
    );
    assert_eq!(call(&reg, "DELETE", "/subjects/s", Value::Null), Err(40404));
    assert_eq!(
        call(&reg, "GET", "/subjects", Value::Null).unwrap(),
        json!([])
    );
    assert_eq!(
        call(&reg, "GET", "/subjects?deleted=true", Value::Null).unwrap(),
        json!(["s"])
    );
    assert_eq!(
        call(&reg, "DELETE", "/subjects/s?permanent=true", Value::Null).unwrap(),
        json!([1, 2])
    );
    assert_eq!(
        call(&reg, "GET", "/subjects/s/versions", Value::Null),
        Err(40401)
    );
    // Ids survive: re-registering gets the same id back, at version 1.
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/s/versions",
            json!({"schema": record(ID)})
        )
        .unwrap(),
        json!({"id": 1, "version": 1})
    );

    assert_eq!(
        call(&reg, "PUT", "/mode", json!({"mode": "READONLY"})).unwrap(),
        json!({"mode": "READONLY"})
    );
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/t/versions",
            json!({"schema": record(ID)})
        ),
        Err(42205)
    );
    assert_eq!(
        call(&reg, "PUT", "/mode", json!({"mode": "SOMETIMES"})),
        Err(42204)
    );
    assert_eq!(
        call(&reg, "PUT", "/mode", json!({"mode": "IMPORT"})),
        Err(42205)
    );
    call(&reg, "PUT", "/mode?force=true", json!({"mode": "IMPORT"})).unwrap();
    let imported = json!({"schema": record(QTY), "id": 100, "version": 7});
    assert_eq!(
        call(&reg, "POST", "/subjects/t/versions", imported).unwrap(),
        json!({"id": 100, "version": 7})
    );
    call(&reg, "PUT", "/mode", json!({"mode": "READWRITE"})).unwrap();
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/u/versions",
            json!({"schema": record(NOTE)})
        )
        .unwrap()["id"],
        101
    );
    assert_eq!(
        call(&reg, "PUT", "/mode/u", json!({"mode": "READONLY"})).unwrap(),
        json!({"mode": "READONLY"})
    );
    assert_eq!(call(&reg, "DELETE", "/subjects/u", Value::Null), Err(42205));
    assert_eq!(call(&reg, "GET", "/mode/t", Value::Null), Err(40409));
}

#[test]
fn references_resolve_and_protect_what_they_name() {
    let reg = registry();
    let money = r#"{"type":"record","name":"Money","namespace":"m","fields":[{"name":"cents","type":"long"}]}"#;
    call(
        &reg,
        "POST",
        "/subjects/money/versions",
        json!({"schema": money}),
    )
    .unwrap();
    let order = r#"{"type":"record","name":"Order","fields":[{"name":"price","type":"m.Money"}]}"#;
    assert_eq!(
        call(
            &reg,
            "POST",
            "/subjects/order/versions",
            json!({"schema": order})
        ),
        Err(42201)
    );
    let refs = json!([{"name": "m.Money", "subject": "money", "version": 1}]);
    let id = call(
        &reg,
        "POST",
        "/subjects/order/versions",
        json!({"schema": order, "references": refs}),
    )
    .unwrap()["id"]
        .clone();
    assert_eq!(
        call(
            &reg,
            "GET",
            "/subjects/money/versions/1/referencedby",
            Value::Null
        )
        .unwrap(),
        json!([id])
    );
    assert_eq!(
        call(&reg, "DELETE", "/subjects/money", Value::Null),
        Err(42206)
    );
    assert_eq!(
        call(&reg, "GET", "/subjects/order/versions/1", Value::Null).unwrap()["references"],
        refs
    );
}

#[test]
fn routing_access_and_http_details() {
    let (req, headers, http10) = parse_head("GET /subjects/a%2Fb/versions/latest?deleted=true HTTP/1.1\r\nAuthorization: Basic YWxpY2U6cHc=\r\n\r\n").unwrap();
    assert!(!http10);
    assert_eq!(req.segments, ["subjects", "a/b", "versions", "latest"]);
    assert_eq!(
        basic_credentials(&headers[0].1),
        Some(("alice".into(), "pw".into()))
    );
    let (_, access) = route(&req).unwrap();
    assert_eq!(access, Access::Subject("a/b".into(), Operation::Describe));
    let (req, _, _) = parse_head("POST /subjects/orders-value/versions HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(
        route(&req).unwrap().1,
        Access::Subject("orders-value".into(), Operation::Write)
    );
    assert_eq!(call(&registry(), "PUT", "/config", Value::Null), Err(42203));
    let (req, _, _) = parse_head("GET /nowhere HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(route(&req).unwrap_err().code, 404);
    assert!(parse_head("GARBAGE\r\n\r\n").is_err());
    assert_eq!(topic_of("orders-value"), "orders");
    assert_eq!(topic_of("orders-key"), "orders");
    assert_eq!(topic_of("com.acme.Order"), "com.acme.Order");
    assert_eq!(topic_of("-value"), "-value");
}

#[test]
fn protobuf_and_json_schemas_register_resolve_and_check() {
    const V1: &str = "kop.m.Money total = 1; google.protobuf.Timestamp at = 2;";
    let reg = registry();
    let post = |path: &str, body: Value| call(&reg, "POST", path, body);
    let money = "syntax = \"proto3\";\npackage kop.m;\nmessage Money { int64 cents = 1; }\n";
    post(
        "/subjects/money-proto/versions",
        json!({"schema": money, "schemaType": "PROTOBUF"}),
    )
    .unwrap();
    let order = |fields: &str| {
        format!(
            "syntax = \"proto3\";\npackage kop.o;\nimport \"money.proto\";\n\
             import \"google/protobuf/timestamp.proto\";\n\
             message Order {{ {fields} }}\n"
        )
    };
    let refs = json!([{"name": "money.proto", "subject": "money-proto", "version": 1}]);
    let body = |text: String| json!({"schema": text, "schemaType": "PROTOBUF", "references": refs});
    assert_eq!(
        post(
            "/subjects/orders/versions",
            json!({"schema": order(V1), "schemaType": "PROTOBUF"})
        ),
        Err(42201),
        "an import no reference names"
    );
    let id = post("/subjects/orders/versions", body(order(V1))).unwrap()["id"].clone();
    let by_id = call(&reg, "GET", &format!("/schemas/ids/{id}"), Value::Null).unwrap();
    assert_eq!(by_id["schemaType"], "PROTOBUF");
    assert_eq!(by_id["references"], refs);
    let serialized = call(
        &reg,
        "GET",
        &format!("/schemas/ids/{id}?format=serialized"),
        Value::Null,
    )
    .unwrap();
    assert_ne!(serialized["schema"], by_id["schema"]);
    // The base64 descriptor form is a schema too, and answers the same checks.
    let v = post(
        "/compatibility/subjects/orders/versions/latest",
        json!({"schema": serialized["schema"], "schemaType": "PROTOBUF", "references": refs}),
    )
    .unwrap();
    assert_eq!(v["is_compatible"], true);
    let compatible = |fields: &str| {
        post(
            "/compatibility/subjects/orders/versions/latest",
            body(order(fields)),
        )
        .unwrap()["is_compatible"]
            .clone()
    };
    assert_eq!(compatible(&format!("{V1} string note = 3;")), true);
    assert_eq!(
        compatible("string total = 1; google.protobuf.Timestamp at = 2;"),
        false
    );
    assert_eq!(
        post("/subjects/orders/versions", body(order("int32 total = 1;"))),
        Err(409)
    );
    // A schema of another type does not follow a PROTOBUF one.
    assert_eq!(
        post(
            "/compatibility/subjects/orders/versions/latest",
            json!({"schema": "{\"type\":\"string\"}", "schemaType": "JSON"})
        )
        .unwrap()["is_compatible"],
        false
    );
    // The id index answers where an id is used, and which schemas reference a subject.
    assert_eq!(
        call(
            &reg,
            "GET",
            &format!("/schemas/ids/{id}/versions"),
            Value::Null
        )
        .unwrap(),
        json!([{"subject": "orders", "version": 1}])
    );
    assert_eq!(
        call(
            &reg,
            "GET",
            "/subjects/money-proto/versions/1/referencedby",
            Value::Null
        )
        .unwrap(),
        json!([id])
    );

    let person =
        r#"{"type":"object","properties":{"name":{"type":"string"}},"additionalProperties":false}"#;
    let json_body = |s: &str| json!({"schema": s, "schemaType": "JSON"});
    post("/subjects/people/versions", json_body(person)).unwrap();
    let added = r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"additionalProperties":false}"#;
    assert_eq!(
        post("/subjects/people/versions", json_body(added)).unwrap()["version"],
        2
    );
    let removed =
        r#"{"type":"object","properties":{"age":{"type":"integer"}},"additionalProperties":false}"#;
    assert_eq!(
        post("/subjects/people/versions", json_body(removed)),
        Err(409)
    );
    let v = call(&reg, "GET", "/subjects/people/versions/2", Value::Null).unwrap();
    assert_eq!(v["schemaType"], "JSON");
}

#[test]
fn the_id_index_is_built_for_schemas_stored_before_it() {
    let docs = Arc::new(MemoryDocuments::default());
    let reg = Registry {
        store: Store::new(docs.clone()),
    };
    call(
        &reg,
        "POST",
        "/subjects/a/versions",
        json!({"schema": record(ID)}),
    )
    .unwrap();
    // As stored before the index existed: the schema and subject documents only.
    use crate::storage::DocumentStore;
    for name in docs.names("schema-registry/").unwrap() {
        if name.starts_with("schema-registry/uses/") || name == "schema-registry/indexed" {
            docs.put_if(&name, None, docs.get(&name).unwrap().as_deref())
                .unwrap();
        }
    }
    let fresh = Registry {
        store: Store::new(docs),
    };
    assert_eq!(
        call(&fresh, "GET", "/schemas/ids/1/subjects", Value::Null).unwrap(),
        json!(["a"])
    );
}
