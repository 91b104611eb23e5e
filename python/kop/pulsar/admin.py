"""A small client for the parts of Pulsar's admin REST API (``/admin/v2``) kop needs.

The Python ``pulsar-client`` has no admin API, and this is too little to justify a dependency:
namespace policies, partitioned topic create/grow/delete, non-partitioned topic create.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from kop.pulsar.errors import PulsarStorageError

__all__ = ["PulsarAdmin"]

# Topic-scoped calls may answer 307 "ask the owner broker"; urllib only follows redirects for GET.
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
# Answers that waiting will not change: kop's token is missing, wrong or not allowed.
_REFUSED = (401, 403)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # hand every redirect back to _call, which repeats the method and body


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


class PulsarAdmin:
    def __init__(self, admin_url: str, token: str | None = None, timeout_s: float = 10.0) -> None:
        self.url = admin_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirect)

    # -- namespace -------------------------------------------------------------------------------

    def set_namespace_policies(self, tenant: str, namespace: str) -> None:
        """What Kafka semantics need: kop holds no subscriptions on data topics, and Pulsar would
        otherwise drop their data (zero retention) and delete idle topics."""
        ns = f"/admin/v2/namespaces/{_q(tenant)}/{_q(namespace)}"
        self._expect("PUT", ns, None, ok=(200, 204, 409))  # 409: it exists
        self._expect(
            "POST",
            ns + "/retention",
            {"retentionTimeInMinutes": -1, "retentionSizeInMB": -1},
            ok=(200, 204),
        )
        self._expect(
            "POST",
            ns + "/inactiveTopicPolicies",
            {
                "deleteWhileInactive": False,
                "inactiveTopicDeleteMode": "delete_when_no_subscriptions",
                "maxInactiveDurationSeconds": 0,
            },
            ok=(200, 204),
        )

    # -- topics ----------------------------------------------------------------------------------

    def create_topic(self, tenant: str, namespace: str, topic: str) -> None:
        """Create a non-partitioned topic; an existing one is fine."""
        self._expect("PUT", self._topic_path(tenant, namespace, topic), None, ok=(200, 204, 409))

    def partition_count(self, tenant: str, namespace: str, topic: str) -> int | None:
        """Partitions of the partitioned topic, or None when there is none."""
        status, body = self._call("GET", self._topic_path(tenant, namespace, topic) + "/partitions")
        if status == 404:
            return None
        self._check(status, body, "GET", topic, ok=(200,))
        count = int(body.get("partitions", 0)) if isinstance(body, dict) else 0
        return count or None

    def create_partitioned_topic(
        self, tenant: str, namespace: str, topic: str, partitions: int
    ) -> None:
        """Create with ``partitions``, or grow an existing topic to it (never shrinks)."""
        path = self._topic_path(tenant, namespace, topic) + "/partitions"
        status, body = self._call("PUT", path, partitions)
        if status in (200, 204):
            return
        self._check(status, body, "PUT", path, ok=(409,))
        current = self.partition_count(tenant, namespace, topic)
        if current is None:
            raise PulsarStorageError(
                f"Pulsar admin {self.url}: {topic} exists but is not a partitioned topic"
            )
        if current < partitions:
            self._expect("POST", path, partitions, ok=(200, 204))

    def set_topic_policy(
        self, tenant: str, namespace: str, topic: str, policy: str, value: Any
    ) -> None:
        """Set a topic-level policy (``POST .../{topic}/{policy}``, e.g. ``compactionThreshold``
        or ``retention``); needs topic-level policies on the broker (Pulsar's default)."""
        path = self._topic_path(tenant, namespace, topic) + "/" + _q(policy)
        self._expect("POST", path, value, ok=(200, 204))

    def max_message_size(self) -> int:
        """The broker's ``maxMessageSize`` (the largest message a producer may send), from its
        runtime configuration (needs a super-user token when Pulsar checks authorization)."""
        answer = self._expect("GET", "/admin/v2/brokers/configuration/runtime", None, ok=(200,))
        value = answer.get("maxMessageSize") if isinstance(answer, dict) else None
        try:
            size = int(value) if value is not None else 0
        except (TypeError, ValueError):
            size = 0
        if size <= 0:
            raise PulsarStorageError(
                f"Pulsar admin {self.url}: no usable maxMessageSize in the broker configuration "
                f"({value!r})"
            )
        return size

    def storage_size(self, tenant: str, namespace: str, topic: str) -> int | None:
        """The bytes Pulsar stores of a (non-partitioned) topic, from its stats
        (``storageSize``); None when the topic or the figure is missing."""
        status, body = self._call("GET", self._topic_path(tenant, namespace, topic) + "/stats")
        if status == 404:
            return None
        self._check(status, body, "GET", topic, ok=(200,))
        value = body.get("storageSize") if isinstance(body, dict) else None
        return int(value) if isinstance(value, int) and value >= 0 else None

    def delete_partitioned_topic(self, tenant: str, namespace: str, topic: str) -> None:
        """Force-delete (producers and readers are disconnected); a missing topic is fine."""
        path = self._topic_path(tenant, namespace, topic) + "/partitions?force=true"
        self._expect("DELETE", path, None, ok=(200, 204, 404))

    def entry_index(
        self, tenant: str, namespace: str, topic: str, ledger_id: int, entry_id: int
    ) -> tuple[int, int] | None:
        """(broker index, messages) of one entry of a (non-partitioned) topic: the index is
        the running count of messages (less one) up to the entry's last message, stamped by
        the broker's ``AppendIndexMetadataInterceptor`` (docs/pulsar-native-records.md,
        "Offsets"). None when the entry carries no index (the interceptor is off, or was when
        the entry was written)."""
        path = self._topic_path(tenant, namespace, topic) + f"/ledger/{ledger_id}/entry/{entry_id}"
        status, headers, raw = self._request("GET", path)
        self._check(status, None if status == 200 else _decode(raw), "GET", path, ok=(200,))
        index = headers.get("X-Pulsar-Broker-Entry-METADATA-index")
        if index is None:
            return None
        return int(index), int(headers.get("X-Pulsar-num-batch-message") or 1)

    def examine_entry(
        self, tenant: str, namespace: str, topic: str, where: str
    ) -> tuple[int, int, int | None, int] | None:
        """(ledger id, entry id, broker index or None, messages) of the ``where`` =
        ``"earliest"`` or ``"latest"`` stored entry of a (non-partitioned) topic
        (``GET .../examinemessage?initialPosition=W&messagePosition=1``: one entry, no reader);
        None when the topic stores no message (Pulsar answers 412)."""
        path = (
            self._topic_path(tenant, namespace, topic)
            + f"/examinemessage?initialPosition={_q(where)}&messagePosition=1"
        )
        status, headers, raw = self._request("GET", path)
        if status == 412:
            return None  # "the total message is zero"
        self._check(status, None if status == 200 else _decode(raw), "GET", path, ok=(200,))
        ledger, _, entry = str(headers.get("X-Pulsar-Message-ID") or "").partition(":")
        index = headers.get("X-Pulsar-Broker-Entry-METADATA-index")
        return (
            int(ledger),
            int(entry),
            None if index is None else int(index),
            int(headers.get("X-Pulsar-num-batch-message") or 1),
        )

    def entry_by_index(
        self, tenant: str, namespace: str, topic: str, index: int
    ) -> tuple[int, int] | None:
        """(ledger id, entry id) of the stored entry holding the message of broker index
        ``index`` (``GET .../getMessageIdByIndex?index=N``, Pulsar 4.1+); None past the last
        message. Pulsar 4.2.4 answers ``(-1, -1)`` (returned as is) for an index inside the
        earliest stored entry other than its last message, and for one below it (deleted by
        retention); the answer never names a message inside a batch entry."""
        path = self._topic_path(tenant, namespace, topic) + f"/getMessageIdByIndex?index={index}"
        status, body = self._call("GET", path)
        reason = body.get("reason") if isinstance(body, dict) else None
        if status == 404 and str(reason).startswith("Message not found"):
            return None  # past the last message
        self._check(status, body, "GET", path, ok=(200,))
        if not isinstance(body, dict):
            raise PulsarStorageError(f"Pulsar admin {self.url}: GET {path} answered {body!r}")
        return int(body.get("ledgerId", -1)), int(body.get("entryId", -1))

    # -- permissions (authorizer = "pulsar") -----------------------------------------------------

    def tenant_info(self, tenant: str) -> Any:
        """``GET /admin/v2/tenants/T``: admin roles and allowed clusters."""
        return self._expect("GET", f"/admin/v2/tenants/{_q(tenant)}", None, ok=(200,))

    def namespace_policies(self, tenant: str, namespace: str) -> Any:
        """``GET /admin/v2/namespaces/T/NS``: every policy, including ``auth_policies``."""
        return self._expect(
            "GET", f"/admin/v2/namespaces/{_q(tenant)}/{_q(namespace)}", None, ok=(200,)
        )

    def runtime_configuration(self) -> tuple[int, Any]:
        """(status, body) of the broker's runtime configuration (super users only)."""
        return self._call("GET", "/admin/v2/brokers/configuration/runtime")

    # -- compaction (docs/compaction.md, "Pulsar") -------------------------------------------------

    def ensure_subscription(self, tenant: str, namespace: str, topic: str, name: str) -> None:
        """Create the durable subscription ``name`` at the earliest message (of every partition,
        for a partitioned topic); an existing one stays where it is."""
        path = self._topic_path(tenant, namespace, topic) + "/subscription/" + _q(name)
        earliest = {"ledgerId": -1, "entryId": -1, "partitionIndex": -1}
        self._expect("PUT", path, earliest, ok=(200, 204, 409))

    def reset_cursor(
        self, tenant: str, namespace: str, topic: str, name: str, position: tuple[int, int]
    ) -> None:
        """Move subscription ``name`` of a (non-partitioned) topic to ``position`` (ledger id,
        entry id): the messages before it count as acknowledged."""
        path = self._topic_path(tenant, namespace, topic) + f"/subscription/{_q(name)}/resetcursor"
        ledger_id, entry_id = position
        body = {
            "ledgerId": ledger_id,
            "entryId": entry_id,
            "partitionIndex": -1,
            "isExcluded": False,
        }
        self._expect("POST", path, body, ok=(200, 204))

    def trim_topic(self, tenant: str, namespace: str, topic: str) -> None:
        """Ask Pulsar to delete the ledgers its retention lets go now (not the current one)."""
        self._expect(
            "POST", self._topic_path(tenant, namespace, topic) + "/trim", None, ok=(200, 204)
        )

    def delete_topic(self, tenant: str, namespace: str, topic: str) -> None:
        """Force-delete a non-partitioned topic; a missing one is fine."""
        path = self._topic_path(tenant, namespace, topic) + "?force=true"
        self._expect("DELETE", path, None, ok=(200, 204, 404))

    def topics(self, tenant: str, namespace: str) -> list[str]:
        """The full names of the namespace's persistent (non-partitioned or partition) topics."""
        answer = self._expect(
            "GET", f"/admin/v2/persistent/{_q(tenant)}/{_q(namespace)}", None, ok=(200,)
        )
        return [str(t) for t in answer] if isinstance(answer, list) else []

    # -- plumbing --------------------------------------------------------------------------------

    @staticmethod
    def _topic_path(tenant: str, namespace: str, topic: str) -> str:
        return f"/admin/v2/persistent/{_q(tenant)}/{_q(namespace)}/{_q(topic)}"

    def _expect(self, method: str, path: str, body: Any, ok: tuple[int, ...]) -> Any:
        status, answer = self._call(method, path, body)
        self._check(status, answer, method, path, ok)
        return answer

    def _check(self, status: int, body: Any, method: str, path: str, ok: tuple[int, ...]) -> None:
        if status not in ok:
            reason = body.get("reason") if isinstance(body, dict) else body
            raise PulsarStorageError(
                f"Pulsar admin {self.url}: {method} {path} answered {status}: {reason}",
                permanent=status in _REFUSED,
            )

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body or text or None); raises only when unreachable."""
        status, _headers, raw = self._request(method, path, body)
        return status, _decode(raw)

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, bytes]:
        """(HTTP status, response headers, raw body); raises only when unreachable."""
        url = self.url + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        for _ in range(_MAX_REDIRECTS + 1):
            request = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with self._opener.open(request, timeout=self._timeout_s) as resp:
                    return resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as err:
                location = err.headers.get("Location")
                if err.code in _REDIRECTS and location:
                    url = urllib.parse.urljoin(url, location)
                    continue
                return err.code, err.headers, err.read()
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                raise PulsarStorageError(
                    f"Pulsar admin {self.url} unreachable ({method} {path}): {reason}"
                ) from err
        raise PulsarStorageError(f"Pulsar admin {self.url}: too many redirects for {method} {path}")


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
