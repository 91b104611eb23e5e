"""Test records and the checks every produce/consume test makes: byte-identical, in order per
partition, offsets contiguous."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class Rec:
    partition: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int | None = None


@dataclass(frozen=True)
class Got:
    """A consumed record, client-neutral."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int | None = None
    timestamp_type: str | None = None  # "create" / "log_append" where the client says


@dataclass
class Mix:
    """Which record shapes to generate."""

    partitions: int = 4
    big_values: int = 0  # how many ~1 MiB values
    big_size: int = 1 << 20
    null_header_values: bool = True
    seed: int = 1


def make_records(n: int, mix: Mix | None = None) -> list[Rec]:
    """n records round-robin over the partitions: keys (some null), headers (some repeated,
    empty, null-valued), null values, empty values, a few big values, the rest small and
    moderately compressible."""
    mix = mix or Mix()
    rng = random.Random(mix.seed)
    big_at = set()
    if mix.big_values:
        step = max(1, n // (mix.big_values + 1))
        big_at = {step * (j + 1) for j in range(mix.big_values)}
    words = [rng.randbytes(rng.randint(1, 9)).hex().encode() for _ in range(64)]
    out = []
    for i in range(n):
        # null keys, but never with a null value (kafka-python refuses that)
        key = None if i % 10 == 3 and i % 97 != 5 else b"key-%d" % i
        if i in big_at:
            value: bytes | None = rng.randbytes(mix.big_size)
        elif i % 97 == 5:
            value = None
        elif i % 97 == 6:
            value = b""
        else:
            value = b"value-%d:" % i + b" ".join(rng.choices(words, k=rng.randint(1, 20)))
        headers: Headers = ()
        if i % 7 == 0:
            headers = (("h1", b"x"), ("h1", b"repeated"), ("empty", b""))
            if mix.null_header_values:
                headers += (("null", None),)
        elif i % 7 == 1:
            headers = (("trace-id", b"%08d" % i),)
        out.append(Rec(i % mix.partitions, key, value, headers))
    return out


def _short(v: bytes | None) -> str:
    if v is None:
        return "None"
    if len(v) > 60:
        return f"<{len(v)} bytes {v[:24]!r}...>"
    return repr(v)


def _norm_headers(h: Iterable[tuple[str, bytes | None]] | None) -> Headers:
    return tuple((k, v) for k, v in (h or ()))


def by_partition(recs: Iterable[Rec]) -> dict[int, list[Rec]]:
    out: dict[int, list[Rec]] = defaultdict(list)
    for r in recs:
        out[r.partition].append(r)
    return out


def check_contiguous(
    got: Mapping[int, Sequence[Got]], start: Mapping[int, int] | None = None
) -> None:
    for p, rows in got.items():
        first = (start or {}).get(p, rows[0].offset if rows else 0)
        offsets = [g.offset for g in rows]
        want = list(range(first, first + len(rows)))
        if offsets != want:
            bad = next(i for i, (a, b) in enumerate(zip(offsets, want, strict=True)) if a != b)
            raise AssertionError(
                f"partition {p}: offsets not contiguous from {first}: at index {bad} got "
                f"{offsets[bad]}, want {want[bad]} "
                f"(neighbours {offsets[max(0, bad - 2) : bad + 3]})"
            )


def check_same(
    sent: Sequence[Rec],
    got: Mapping[int, Sequence[Got]],
    *,
    check_headers: bool = True,
    check_timestamps: bool = False,
    start: Mapping[int, int] | None = None,
) -> None:
    """Every sent record read back byte-identical, in send order per partition, offsets
    contiguous (from ``start[p]``, default 0), nothing extra."""
    want = by_partition(sent)
    extra = set(got) - set(want)
    assert not any(got[p] for p in extra), f"records in partitions never written: {extra}"
    for p, recs in sorted(want.items()):
        rows = list(got.get(p, ()))
        assert len(rows) == len(recs), (
            f"partition {p}: sent {len(recs)} records, read back {len(rows)}"
        )
        first = (start or {}).get(p, 0)
        for i, (r, g) in enumerate(zip(recs, rows, strict=True)):
            where = f"partition {p} record #{i} (offset {g.offset})"
            assert g.offset == first + i, f"{where}: offset {g.offset}, want {first + i}"
            assert g.key == r.key, f"{where}: key {_short(g.key)} != sent {_short(r.key)}"
            assert g.value == r.value, f"{where}: value {_short(g.value)} != sent {_short(r.value)}"
            if check_headers:
                gh = _norm_headers(g.headers)
                assert gh == r.headers, f"{where}: headers {gh} != sent {r.headers}"
            if check_timestamps and r.timestamp is not None:
                assert g.timestamp == r.timestamp, (
                    f"{where}: timestamp {g.timestamp} != sent {r.timestamp}"
                )


@dataclass
class Acks:
    """Delivery reports: (partition, offset) per sent index, or the error."""

    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)

    def check_order(self, sent: Sequence[Rec]) -> None:
        """Acknowledged offsets follow send order within each partition, with no gaps."""
        assert not self.errors, (
            f"{len(self.errors)} delivery errors, e.g. {next(iter(self.errors.items()))}"
        )
        per: dict[int, list[int]] = defaultdict(list)
        for i in range(len(sent)):
            p, off = self.offsets[i]
            assert p == sent[i].partition, (
                f"record {i} acked on partition {p}, sent to {sent[i].partition}"
            )
            per[p].append(off)
        for p, offs in per.items():
            assert offs == list(range(offs[0], offs[0] + len(offs))), (
                f"partition {p}: acked offsets not contiguous in send order: {offs[:10]}..."
            )
