"""The schema registry (``schema_registry_listener``, docs/schema-registry.md) under
confluent-kafka's ``SchemaRegistryClient`` and its Avro, Protobuf and JSON Schema
serializers: records produced and consumed through kop with schemas registered in kop; a
table of schema evolutions per type answered as Confluent's documented compatibility rules
answer them; deletes; modes; invalid schemas refused; HTTP basic against the SASL users and the ACL
authorizer; restart and kill -9 keep every schema and id; two kop instances on Pulsar
registering at once get distinct ids and see each other's schemas. kop targets only."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as F

from conftest import TARGETS
from helpers import ck
from helpers.certs import make_pki
from helpers.servers import HOST, ServerHandle, free_port, make_server, start_server


def _kop_only(target: str) -> None:
    if target == "kafka":
        pytest.skip("the schema registry is kop's own listener")


def _with_registry(**options: Any) -> dict[str, Any]:
    return {"schema_registry_listener": f"{HOST}:{free_port()}", **options}


def _url(srv: ServerHandle) -> str:
    return "http://" + str(srv.config["schema_registry_listener"])


@pytest.fixture(scope="module")
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """One kop with the registry per module, on kop-cli (kop-embedded and kop-pulsar when
    KOP_TEST_TARGETS names them: the restart and two-instance tests cover those)."""
    target = next((t for t in TARGETS if t != "kafka"), None)
    if target is None:
        pytest.skip("the schema registry is kop's own listener")
    srv = start_server(target, tmp_path_factory.mktemp("registry"), **_with_registry())
    yield srv
    srv.stop()


def _client(srv: ServerHandle, **conf: Any) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": _url(srv), **conf})


def _record(name: str, fields: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "kop.test", "fields": fields})


def _error(call: Any) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as info:
        call()
    return info.value


def test_avro_serializers_produce_and_consume_through_kop(registry: ServerHandle) -> None:
    client = _client(registry)
    topic = ck.create_topic(registry.bootstrap, ck.unique("avro"), 1)
    schema = _record(
        "Order",
        [
            {"name": "id", "type": "long"},
            {"name": "item", "type": "string"},
            {"name": "qty", "type": "int", "default": 1},
        ],
    )
    serializer = AvroSerializer(client, schema)
    ctx = SerializationContext(topic, MessageField.VALUE)
    orders = [{"id": i, "item": f"item-{i}", "qty": i % 5} for i in range(50)]
    producer = ck.producer(registry.bootstrap)
    for order in orders:
        producer.produce(topic, value=serializer(order, ctx), partition=0)
    assert producer.flush(30) == 0

    latest = client.get_latest_version(f"{topic}-value")
    assert latest.version == 1 and latest.schema.schema_type == "AVRO"
    got = ck.consume_all(registry.bootstrap, topic, [0])[0]
    # A fresh client: the deserializer fetches the writer's schema by id from kop.
    deserializer = AvroDeserializer(_client(registry))
    assert [deserializer(g.value, ctx) for g in got] == orders
    # Confluent's wire format: magic byte 0, then the schema id.
    assert {g.value[:5] for g in got if g.value} == {b"\0" + latest.schema_id.to_bytes(4, "big")}
    assert client.get_schema(latest.schema_id).schema_str is not None
    assert client.get_subjects_by_schema_id(latest.schema_id) == [f"{topic}-value"]


A = {"name": "a", "type": "string"}
B = {"name": "b", "type": "int"}
B_DEFAULT = {"name": "b", "type": "int", "default": 0}
N_INT = {"name": "n", "type": "int"}
N_LONG = {"name": "n", "type": "long"}
N_STRING = {"name": "n", "type": "string"}
COLOR = {"name": "c", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}}
COLOR_MORE = {
    "name": "c",
    "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]},
}
OPTIONAL = {"name": "o", "type": ["null", "string"], "default": None}

# (level, earlier versions, new version, compatible?) per Confluent's documented rules
# ("Schema Evolution and Compatibility"): BACKWARD = the new schema reads data of the last
# version, FORWARD = the last version reads data of the new schema, FULL = both, *_TRANSITIVE =
# against every earlier version, NONE = no check.
EVOLUTIONS = [
    ("BACKWARD", [[A]], [A, B_DEFAULT], True),  # add a field with a default
    ("BACKWARD", [[A]], [A, B], False),  # add a field without a default
    ("BACKWARD", [[A, B]], [A], True),  # delete a field
    ("FORWARD", [[A, B]], [A], False),  # delete a field old readers need
    ("FORWARD", [[A, B_DEFAULT]], [A], True),  # delete a field old readers default
    ("FORWARD", [[A]], [A, B], True),  # add a field: old readers ignore it
    ("FULL", [[A]], [A, B], False),
    ("FULL", [[A]], [A, B_DEFAULT], True),
    ("FULL", [[A]], [A, OPTIONAL], True),
    ("BACKWARD", [[N_INT]], [N_LONG], True),  # int -> long is a promotion
    ("FORWARD", [[N_INT]], [N_LONG], False),
    ("BACKWARD", [[N_INT]], [N_STRING], False),  # int -> string is not
    ("NONE", [[N_INT]], [N_STRING], True),
    ("BACKWARD", [[COLOR]], [COLOR_MORE], True),  # a new reader knows every old symbol
    ("FORWARD", [[COLOR]], [COLOR_MORE], False),  # an old reader does not know BLUE
    ("BACKWARD", [[A], [A, B_DEFAULT]], [A, B], True),  # checked against the last version only
    ("BACKWARD_TRANSITIVE", [[A], [A, B_DEFAULT]], [A, B], False),  # ... and against v1 too
    ("FORWARD_TRANSITIVE", [[A, B], [A, B, N_INT]], [A, N_INT], False),
    ("FULL_TRANSITIVE", [[A], [A, B_DEFAULT]], [A, B_DEFAULT, OPTIONAL], True),
]


@pytest.mark.parametrize(("level", "earlier", "new", "compatible"), EVOLUTIONS)
def test_schema_evolutions_are_answered_as_confluent_documents(
    registry: ServerHandle,
    level: str,
    earlier: list[list[dict[str, Any]]],
    new: list[dict[str, Any]],
    compatible: bool,
) -> None:
    client = _client(registry)
    subject = ck.unique("evolve")
    assert client.set_compatibility(subject, level)["compatibility"] == level
    assert client.get_compatibility(subject) == level
    # Earlier versions go in under NONE (a transitive case's history need not be compatible).
    client.set_compatibility(subject, "NONE")
    for fields in earlier:
        client.register_schema(subject, Schema(_record("R", fields), "AVRO"))
    client.set_compatibility(subject, level)
    candidate = Schema(_record("R", new), "AVRO")
    # Against the versions the level names (what registering checks) ...
    assert client.test_compatibility_all_versions(subject, candidate) is compatible
    # ... and against the latest version alone.
    if not level.endswith("TRANSITIVE"):
        assert client.test_compatibility(subject, candidate) is compatible
    if compatible:
        client.register_schema(subject, candidate)
        assert len(client.get_versions(subject)) == len(earlier) + 1
    else:
        err = _error(lambda: client.register_schema(subject, candidate))
        assert (err.http_status_code, err.error_code) == (409, 409), err
        assert "incompatible" in err.error_message
        assert len(client.get_versions(subject)) == len(earlier)


def _order_class(file_name: str) -> Any:
    """A generated-like Protobuf message class built at test time (no protoc): an Order in
    ``file_name`` importing a Money message from its own file and the well-known Timestamp,
    so that the serializer registers Money as a reference and skips Timestamp."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    money = descriptor_pb2.FileDescriptorProto(
        name="kop/test/money.proto", package="kop.money", syntax="proto3"
    )
    m = money.message_type.add(name="Money")
    m.field.add(name="cents", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m.field.add(name="currency", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool.Add(money)
    order = descriptor_pb2.FileDescriptorProto(
        name=file_name,
        package="kop.test",
        syntax="proto3",
        dependency=["kop/test/money.proto", "google/protobuf/timestamp.proto"],
    )
    o = order.message_type.add(name="Order")
    o.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    o.field.add(
        name="total",
        number=2,
        type=F.TYPE_MESSAGE,
        type_name=".kop.money.Money",
        label=F.LABEL_OPTIONAL,
    )
    o.field.add(
        name="at",
        number=3,
        type=F.TYPE_MESSAGE,
        type_name=".google.protobuf.Timestamp",
        label=F.LABEL_OPTIONAL,
    )
    o.field.add(name="tags", number=4, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    pool.Add(order)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kop.test.Order"))


def test_protobuf_serializers_produce_and_consume_through_kop(registry: ServerHandle) -> None:
    client = _client(registry)
    topic = ck.unique("proto")
    ck.create_topic(registry.bootstrap, topic, 1)
    order_class = _order_class(f"kop/test/{topic}.proto")
    serializer = ProtobufSerializer(order_class, client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    orders = []
    for i in range(20):
        o = order_class(id=i, tags=[f"t{i}"])
        o.total.cents = i * 100
        o.total.currency = "EUR"
        o.at.seconds = 1_700_000_000 + i
        orders.append(o)
    producer = ck.producer(registry.bootstrap)
    for o in orders:
        producer.produce(topic, value=serializer(o, ctx), partition=0)
    assert producer.flush(30) == 0

    latest = client.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "PROTOBUF"
    # The serializer registered Money as a reference (its own subject) and skipped Timestamp.
    assert [(r.name, r.subject) for r in latest.schema.references] == [
        ("kop/test/money.proto", "kop/test/money.proto")
    ]
    assert client.get_schema(latest.schema_id).schema_type == "PROTOBUF"
    got = ck.consume_all(registry.bootstrap, topic, [0])[0]
    # A fresh client: the deserializer fetches the writer's descriptor (format=serialized).
    deserializer = ProtobufDeserializer(order_class, {}, _client(registry))
    assert [deserializer(g.value, ctx) for g in got] == orders


PROTO_V1 = "message Order { int64 id = 1; string note = 2; }"
PROTO_V1_QTY = "message Order { int64 id = 1; string note = 2; int32 qty = 3; }"

# (level, earlier .proto message bodies, new body, compatible?) per Confluent's Protobuf rules.
PROTO_EVOLUTIONS = [
    (
        "BACKWARD",
        [PROTO_V1],
        "message Order { int64 id = 1; string note = 2; int32 qty = 3; }",
        True,
    ),
    ("BACKWARD", [PROTO_V1], "message Order { int64 id = 1; }", True),  # a field removed
    ("BACKWARD", [PROTO_V1], "message Order { int64 key = 1; string note = 2; }", True),  # rename
    ("BACKWARD", [PROTO_V1], "message Order { int32 id = 1; bytes note = 2; }", True),  # same wire
    ("BACKWARD", [PROTO_V1], "message Order { string id = 1; string note = 2; }", False),
    ("BACKWARD", [PROTO_V1], "message Order { sint64 id = 1; string note = 2; }", False),
    ("BACKWARD", [PROTO_V1], "message Other { int64 id = 1; }", False),  # message removed
    ("BACKWARD", [PROTO_V1], "message Order { repeated int64 id = 1; string note = 2; }", False),
    ("BACKWARD", [PROTO_V1], "message Order { oneof k { int64 id = 1; string note = 2; } }", False),
    (
        "FORWARD",
        [PROTO_V1],
        "message Order { int64 id = 1; string note = 2; int32 qty = 3; }",
        True,
    ),
    ("FULL", [PROTO_V1], "message Order { int64 id = 1; }", True),
    ("FULL", [PROTO_V1], "message Order { int64 id = 1; double note = 2; }", False),
    ("NONE", [PROTO_V1], "message Order { double id = 1; }", True),
    (
        "BACKWARD_TRANSITIVE",
        [PROTO_V1, "message Order { int64 id = 1; }"],
        "message Order { int64 id = 1; int32 note = 2; }",
        False,  # reuses number 2 with another wire type: v1 data breaks
    ),
]


def _proto(body: str) -> Schema:
    return Schema(f'syntax = "proto3";\npackage kop.test;\n{body}\n', "PROTOBUF")


def _evolve(
    registry: ServerHandle, level: str, earlier: list[Schema], new: Schema, compatible: bool
) -> None:
    client = _client(registry)
    subject = ck.unique("evolve")
    client.set_compatibility(subject, "NONE")
    for schema in earlier:
        client.register_schema(subject, schema)
    client.set_compatibility(subject, level)
    assert client.test_compatibility_all_versions(subject, new) is compatible
    if compatible:
        client.register_schema(subject, new)
    else:
        err = _error(lambda: client.register_schema(subject, new))
        assert (err.http_status_code, err.error_code) == (409, 409), err
    assert len(client.get_versions(subject)) == len(earlier) + (1 if compatible else 0)


@pytest.mark.parametrize(("level", "earlier", "new", "compatible"), PROTO_EVOLUTIONS)
def test_protobuf_evolutions_are_answered_as_confluent_documents(
    registry: ServerHandle, level: str, earlier: list[str], new: str, compatible: bool
) -> None:
    _evolve(registry, level, [_proto(b) for b in earlier], _proto(new), compatible)


def test_json_serializers_produce_and_consume_through_kop(registry: ServerHandle) -> None:
    client = _client(registry)
    topic = ck.unique("json")
    ck.create_topic(registry.bootstrap, topic, 1)
    schema = json.dumps(
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Order",
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "item": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["id", "item"],
            "additionalProperties": False,
        }
    )
    serializer = JSONSerializer(schema, client)
    ctx = SerializationContext(topic, MessageField.VALUE)
    orders = [{"id": i, "item": f"item-{i}", "tags": ["a"] * (i % 3)} for i in range(20)]
    producer = ck.producer(registry.bootstrap)
    for order in orders:
        producer.produce(topic, value=serializer(order, ctx), partition=0)
    assert producer.flush(30) == 0
    latest = client.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_type == "JSON"
    got = ck.consume_all(registry.bootstrap, topic, [0])[0]
    # No schema given: the deserializer validates against the writer's schema from kop.
    deserializer = JSONDeserializer(None, schema_registry_client=_client(registry))
    assert [deserializer(g.value, ctx) for g in got] == orders


def _object(props: dict[str, Any], closed: bool, required: list[str] | None = None) -> str:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if closed:
        schema["additionalProperties"] = False
    if required:
        schema["required"] = required
    return json.dumps(schema)


S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741
JSON_V1_CLOSED = _object({"a": S}, True)
JSON_V1_OPEN = _object({"a": S}, False)

# (level, earlier, new, compatible?) per Confluent's JSON Schema rules (open and closed
# content models: a property absent from an open model may hold anything).
JSON_EVOLUTIONS = [
    ("BACKWARD", [JSON_V1_CLOSED], _object({"a": S, "b": I}, True), True),
    ("BACKWARD", [JSON_V1_CLOSED], _object({}, True), False),  # removed from a closed model
    ("BACKWARD", [JSON_V1_OPEN], _object({}, False), True),  # removed from an open model
    ("BACKWARD", [JSON_V1_OPEN], _object({"a": S, "b": I}, False), False),  # added to open
    ("BACKWARD", [JSON_V1_OPEN], JSON_V1_CLOSED, False),  # content model closed
    ("BACKWARD", [JSON_V1_CLOSED], _object({"a": S, "b": I}, True, ["b"]), False),  # required
    ("BACKWARD", [_object({"a": S}, True, ["a"])], JSON_V1_CLOSED, True),  # no longer required
    ("BACKWARD", [json.dumps(I)], json.dumps({"type": "number"}), True),  # widened
    ("BACKWARD", [json.dumps({"type": "number"})], json.dumps(I), False),  # narrowed
    ("BACKWARD", [json.dumps({"enum": ["x", "y"]})], json.dumps({"enum": ["x", "y", "z"]}), True),
    ("BACKWARD", [json.dumps({"enum": ["x", "y"]})], json.dumps({"enum": ["x"]}), False),
    ("BACKWARD", [json.dumps(S)], json.dumps({"type": "string", "maxLength": 8}), False),
    ("FORWARD", [JSON_V1_CLOSED], _object({"a": S, "b": I}, True), False),
    ("FORWARD", [JSON_V1_OPEN], _object({"a": S, "b": I}, False), True),
    ("FULL", [JSON_V1_OPEN], _object({}, False), False),
    ("NONE", [json.dumps(S)], json.dumps(I), True),
]


@pytest.mark.parametrize(("level", "earlier", "new", "compatible"), JSON_EVOLUTIONS)
def test_json_schema_evolutions_are_answered_as_confluent_documents(
    registry: ServerHandle, level: str, earlier: list[str], new: str, compatible: bool
) -> None:
    _evolve(
        registry,
        level,
        [Schema(e, "JSON") for e in earlier],
        Schema(new, "JSON"),
        compatible,
    )


def test_deletes_lookups_and_errors(registry: ServerHandle) -> None:
    client = _client(registry)
    subject = ck.unique("del")
    v1 = Schema(_record("D", [A]), "AVRO")
    v2 = Schema(_record("D", [A, B_DEFAULT]), "AVRO")
    id1 = client.register_schema(subject, v1)
    id2 = client.register_schema(subject, v2)
    assert id1 != id2
    assert client.register_schema(subject, v1) == id1  # the same schema: the same id
    assert client.lookup_schema(subject, v2).version == 2
    assert client.get_versions(subject) == [1, 2]
    assert _error(lambda: client.get_version(subject, 7)).error_code == 40402
    assert _error(lambda: client.get_latest_version(ck.unique("none"))).error_code == 40401
    assert _error(lambda: client.get_schema(987654)).error_code == 40403

    assert _error(lambda: client.delete_version(subject, 1, permanent=True)).error_code == 40407
    assert client.delete_version(subject, 1) == 1
    assert client.get_versions(subject) == [2]
    assert client.delete_subject(subject) == [2]
    assert subject not in client.get_subjects()
    assert _error(lambda: client.delete_subject(subject)).error_code == 40404
    assert client.delete_subject(subject, permanent=True) == [1, 2]
    assert _error(lambda: client.get_versions(subject)).error_code == 40401
    # A schema keeps its id: registering it again after the delete gives it back.
    assert client.register_schema(subject, v2) == id2


def test_modes_and_invalid_schemas(registry: ServerHandle) -> None:
    client = _client(registry)
    subject = ck.unique("mode")
    schema = Schema(_record("M", [A]), "AVRO")
    assert client.update_mode(subject, "READONLY") == "READONLY"
    err = _error(lambda: client.register_schema(subject, schema))
    assert (err.http_status_code, err.error_code) == (422, 42205)
    assert client.delete_mode(subject) == "READONLY"
    client.register_schema(subject, schema)
    assert client.get_global_mode() == "READWRITE"

    # Every type kop checks is served; a schema that does not parse is refused, never stored.
    assert client.get_schema_types() == ["JSON", "PROTOBUF", "AVRO"]
    for schema_type, text in (
        ("JSON", '{"type": "objekt"}'),
        ("PROTOBUF", 'syntax = "proto3"; message M { strin a = 1; }'),
        ("XML", "<schema/>"),
    ):
        unchecked = Schema(text, schema_type)
        err = _error(lambda: client.register_schema(subject, unchecked))  # noqa: B023
        assert (err.http_status_code, err.error_code) == (422, 42201), schema_type
    invalid = Schema('{"type": "record", "name": "X", "fields": [{"name": "a"}]}', "AVRO")
    assert _error(lambda: client.register_schema(subject, invalid)).error_code == 42201


def _http(url: str, method: str = "GET", auth: tuple[str, str] | None = None) -> int:
    req = urllib.request.Request(url, method=method)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_basic_auth_with_sasl_users_and_acls(target: str, server_factory: Any) -> None:
    """With a SASL listener, the registry wants HTTP basic credentials of the SASL users;
    with the ACL authorizer, registering needs WRITE on the subject's topic."""
    _kop_only(target)
    if target == "kop-pulsar":
        pytest.skip("authentication does not depend on the storage")
    srv = server_factory(
        target,
        **_with_registry(
            extra_listeners=[f"SASL_PLAINTEXT://{HOST}:0"],
            sasl_users=["admin:admin-secret", "bob:bob-secret"],
            authorizer="acl",
            super_users=["User:admin"],
        ),
    )
    url = _url(srv)
    assert _http(f"{url}/subjects") == 401
    assert _http(f"{url}/subjects", auth=("admin", "wrong")) == 401
    assert _http(f"{url}/subjects", auth=("admin", "admin-secret")) == 200
    admin = _client(srv, **{"basic.auth.user.info": "admin:admin-secret"})
    admin.register_schema("orders-value", Schema(_record("O", [A]), "AVRO"))
    bob = _client(srv, **{"basic.auth.user.info": "bob:bob-secret"})
    err = _error(
        lambda: bob.register_schema("orders-value", Schema(_record("O", [A, B_DEFAULT]), "AVRO"))
    )
    assert (err.http_status_code, err.error_code) == (403, 40301)
    assert bob.get_subjects() == []  # bob may DESCRIBE no topic: he sees no subject
    assert admin.get_subjects() == ["orders-value"]


def test_https_and_client_certificates_with_tls_listeners(
    target: str, server_factory: Any, tmp_path: Any
) -> None:
    """When the Kafka listeners use TLS the registry serves HTTPS with their certificate, and a
    verified client certificate is the principal (mTLS) as on an SSL listener."""
    if target != "kop-embedded":
        pytest.skip("TLS does not depend on how kop runs or stores")
    pki = make_pki(tmp_path / "pki")
    srv = server_factory(
        target,
        **_with_registry(
            extra_listeners=[f"SSL://{HOST}:0"],
            ssl_certfile=str(pki.server_cert),
            ssl_keyfile=str(pki.server_key),
            ssl_cafile=str(pki.ca),
            ssl_client_auth="requested",
            ssl_principal_mapping_rules=r"RULE:^CN=([^,]*),OU=clients.*$/$1/L,DEFAULT",
            authorizer="acl",
            super_users=["User:alice"],
        ),
    )
    url = "https://" + str(srv.config["schema_registry_listener"])
    assert srv.server.schema_registry_url == url

    def get(cert: bool) -> int:
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        ctx.check_hostname = False  # the certificate names localhost, the URL 127.0.0.1
        if cert:
            ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        try:
            with urllib.request.urlopen(f"{url}/config", timeout=10, context=ctx) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    assert get(cert=True) == 200  # User:alice, a super user
    assert get(cert=False) == 403  # User:ANONYMOUS may not DESCRIBE_CONFIGS the cluster
    # Plain HTTP gets a TLS alert, not an answer.
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(f"http://{srv.config['schema_registry_listener']}/", timeout=5)


def _register_many(client: SchemaRegistryClient, prefix: str, n: int) -> dict[str, int]:
    ids = {}
    for i in range(n):
        subject = f"{prefix}-{i}-value"
        ids[subject] = client.register_schema(
            subject, Schema(_record(f"R{i}", [{"name": f"{prefix}_{i}", "type": "long"}]), "AVRO")
        )
    return ids


def _check_kept(srv: ServerHandle, ids: dict[str, int]) -> None:
    client = _client(srv)
    for subject, schema_id in ids.items():
        latest = client.get_latest_version(subject)
        assert (latest.schema_id, latest.version) == (schema_id, 1)
        assert json.loads(_client(srv).get_schema(schema_id).schema_str)["fields"]


@pytest.mark.kop_process
def test_restart_and_kill9_keep_every_schema_and_id(target: str, server_factory: Any) -> None:
    _kop_only(target)
    srv = server_factory(target, **_with_registry())
    ids = _register_many(_client(srv), "durable", 5)
    assert len(set(ids.values())) == 5
    srv.restart()
    _check_kept(srv, ids)
    if srv.can_kill:
        more = _register_many(_client(srv), "killed", 3)
        srv.kill()
        srv.start()
        _check_kept(srv, {**ids, **more})
        ids.update(more)
    # New ids after a restart never reuse old ones.
    fresh = _register_many(_client(srv), "fresh", 2)
    assert not set(fresh.values()) & set(ids.values())


def test_two_instances_on_pulsar_share_ids_and_schemas(target: str, tmp_path: Any) -> None:
    if target != "kop-pulsar":
        pytest.skip("two instances share a storage on Pulsar only")
    one = start_server(target, tmp_path / "one", **_with_registry(node_id=1))
    namespace = getattr(one, "namespace")  # noqa: B009 (a KopPulsar's)
    two = make_server(target, tmp_path / "two", namespace=namespace, **_with_registry(node_id=2))
    try:
        two.start()
        results: dict[str, dict[str, int]] = {}

        def register(name: str, srv: ServerHandle) -> None:
            results[name] = _register_many(_client(srv), name, 10)

        threads = [
            threading.Thread(target=register, args=(name, srv))
            for name, srv in (("one", one), ("two", two))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert set(results) == {"one", "two"}
        all_ids = [*results["one"].values(), *results["two"].values()]
        assert len(set(all_ids)) == 20, f"ids collided: {results}"
        # Each instance sees what the other registered (documents follow the shared topic).
        deadline = time.monotonic() + 30
        while True:
            try:
                _check_kept(one, results["two"])
                _check_kept(two, results["one"])
                break
            except (SchemaRegistryError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # The same schema registered on both: one id.
        same = Schema(_record("Same", [A]), "AVRO")
        assert _client(one).register_schema("same-a", same) == _client(two).register_schema(
            "same-b", same
        )
    finally:
        two.stop()
        one.stop()
