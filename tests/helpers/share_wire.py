"""Raw ShareGroupHeartbeat and ShareGroupDescribe (v1) for share-group checks that a client
library cannot make: a member that stays at its epoch across a server restart, the group epoch
a coordinator reports; and the classic group APIs (DescribeGroups, OffsetCommit, OffsetFetch)
on a share group's id."""

from __future__ import annotations

import struct

from helpers import wire

API_SHARE_GROUP_HEARTBEAT = 76
API_SHARE_GROUP_DESCRIBE = 77


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> int:
        (v,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return int(v)

    def uvarint(self) -> int:
        shift = out = 0
        while True:
            b = self.data[self.at]
            self.at += 1
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7

    def compact_string(self) -> str | None:
        n = self.uvarint()
        if n == 0:
            return None
        s = self.data[self.at : self.at + n - 1].decode()
        self.at += n - 1
        return s


def _call(bootstrap: str, api_key: int, body: bytes) -> _Reader:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    sock = wire.connect(host, int(port))
    try:
        wire.send_all(sock, wire.request(api_key, 1, 7, body, flexible=True))
        r = _Reader(wire.read_frame(sock))
    finally:
        sock.close()
    assert r.take(">i") == 7
    r.uvarint()  # header tagged fields
    r.take(">i")  # throttle
    return r


def heartbeat(
    bootstrap: str, group: str, member: str, epoch: int, topics: list[str] | None = None
) -> tuple[int, int]:
    """One ShareGroupHeartbeat: (error code, member epoch)."""
    body = wire.compact_string(group) + wire.compact_string(member) + wire.i32(epoch)
    body += wire.compact_string(None)  # rack
    if topics is None:
        body += wire.uvarint(0)
    else:
        body += wire.uvarint(len(topics) + 1)
        body += b"".join(wire.compact_string(t) for t in topics)
    r = _call(bootstrap, API_SHARE_GROUP_HEARTBEAT, body + wire.uvarint(0))
    error = r.take(">h")
    r.compact_string()  # message
    r.compact_string()  # member id
    return error, r.take(">i")


def describe(bootstrap: str, group: str) -> tuple[int, int, int]:
    """ShareGroupDescribe of one group: (error code, group epoch, members)."""
    body = wire.uvarint(2) + wire.compact_string(group) + b"\x00" + wire.uvarint(0)
    r = _call(bootstrap, API_SHARE_GROUP_DESCRIBE, body)
    assert r.uvarint() == 2
    error = r.take(">h")
    r.compact_string()  # message
    r.compact_string()  # group id
    r.compact_string()  # state
    epoch = r.take(">i")
    r.take(">i")  # assignment epoch
    r.compact_string()  # assignor
    return error, epoch, r.uvarint() - 1


def _call_at(bootstrap: str, api_key: int, version: int, body: bytes) -> _Reader:
    """One flexible request at `version`; the reader is past the response header."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    sock = wire.connect(host, int(port))
    try:
        wire.send_all(sock, wire.request(api_key, version, 7, body, flexible=True))
        r = _Reader(wire.read_frame(sock))
    finally:
        sock.close()
    assert r.take(">i") == 7
    r.uvarint()  # header tagged fields
    return r


def classic_describe(bootstrap: str, group: str) -> tuple[int, str | None, str | None]:
    """DescribeGroups v6 of one group: (error code, error message, state)."""
    body = wire.uvarint(2) + wire.compact_string(group) + b"\x00" + wire.uvarint(0)
    r = _call_at(bootstrap, 15, 6, body)
    r.take(">i")  # throttle
    assert r.uvarint() == 2
    error = r.take(">h")
    message = r.compact_string()
    r.compact_string()  # group id
    return error, message, r.compact_string()


def offset_commit(bootstrap: str, group: str, topic: str) -> int:
    """OffsetCommit v9 of offset 1 of partition 0 without a member: its error code."""
    partition = wire.i32(0) + wire.i64(1) + wire.i32(-1) + wire.compact_string(None)
    body = wire.compact_string(group) + wire.i32(-1) + wire.compact_string("")
    body += wire.compact_string(None)  # instance id
    body += wire.uvarint(2) + wire.compact_string(topic)
    body += wire.uvarint(2) + partition + wire.uvarint(0) + wire.uvarint(0) + wire.uvarint(0)
    r = _call_at(bootstrap, 8, 9, body)
    r.take(">i")  # throttle
    assert r.uvarint() == 2
    r.compact_string()  # topic
    assert r.uvarint() == 2
    r.take(">i")  # partition
    return r.take(">h")


def offset_fetch_topics(bootstrap: str, group: str) -> tuple[int, int | None]:
    """OffsetFetch v8 of all of a group's offsets: (topics answered, group error code if none)."""
    body = wire.uvarint(2) + wire.compact_string(group) + wire.uvarint(0) + wire.uvarint(0)
    r = _call_at(bootstrap, 9, 8, body + b"\x00" + wire.uvarint(0))
    r.take(">i")  # throttle
    assert r.uvarint() == 2
    r.compact_string()  # group id
    topics = r.uvarint() - 1
    # The group's error code follows its topics (only an empty list is parsed here).
    return topics, (r.take(">h") if topics == 0 else None)
