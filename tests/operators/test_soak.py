"""Soak: rounds of random changes to a local tree, each synced through four legs under faults.

Each round changes a local tree at random (files added, deleted, resized, rewritten with the same
size; now and then one above the 8 MiB multipart threshold) and syncs it, every request going
through a ``FaultProxy`` (tests/faults.py) that answers 500s and 503 SlowDowns, drops connections and
cuts GET bodies in half:

1. upload: local -> moto bucket A (``delete``, ``checksum`` every third round);
2. server-side copy: A -> moto bucket B, one connection, with the default ``copy_cutoff``: one
   CopyObject per object up to 5 GiB, so moto gives each multipart object's copy the source's
   composite CRC32 without its "-N" (a checksum header that lies: botocore rejects every full GET
   of it, and the later legs read it unchecked, verified by its ETag);
3. streamed copy: B -> a bucket of ``rclone serve s3`` (another endpoint: the bytes go through
   the worker);
4. download: rclone's bucket -> a local directory (``delete``, ``exact_timestamps``).

After every leg its destination holds exactly the source's keys, sizes and bytes, and no bucket has
a multipart upload left. The run is reproducible per seed (``S3SYNC_SOAK_SEED``, printed) as far as
the changes go; which requests the proxies fault also depends on the order threads send them in.
``S3SYNC_SOAK_ROUNDS`` sets the number of rounds (25 by default).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_s3sync import S3SyncOperator
from tests.conftest import LogLines, new_bucket
from tests.faults import KINDS, FaultProxy
from tests.support import (
    NO_DIFFERENCES,
    S3Server,
    bucket_tree,
    connection_json_via,
    local_tree,
    multipart_uploads,
    tree_differences,
    use_connection,
)

KIB = 1024
MIB = 1024 * KIB
SEED = int(os.environ.get("S3SYNC_SOAK_SEED", "20250610"))
ROUNDS = int(os.environ.get("S3SYNC_SOAK_ROUNDS", "25"))
RATE = 0.18
#: Files above the multipart threshold (8 MiB) at once, at most: they cost the most time.
MAX_BIG = 2
#: The multipart threshold: big files are above it, so they are uploaded in parts.
MULTIPART_THRESHOLD = 8 * MIB
DIRECTORIES = ("", "logs/", "logs/2024/", "img/", "deep/a/b/")


class Tree:
    """The local source tree and the seeded random changes made to it."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.names = 0
        self.changes: Counter[str] = Counter()

    def files(self) -> list[Path]:
        return sorted(path for path in self.root.rglob("*") if path.is_file())

    def big(self) -> list[Path]:
        return [path for path in self.files() if path.stat().st_size > MULTIPART_THRESHOLD]

    def _small_size(self) -> int:
        return 0 if self.rng.random() < 0.05 else self.rng.randint(1, 48 * KIB)

    def _big_size(self) -> int:
        return self.rng.randint(MULTIPART_THRESHOLD + 1, MULTIPART_THRESHOLD + 2 * MIB)

    def _write(self, path: Path, size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.rng.randbytes(size))

    def add(self, *, big: bool = False) -> None:
        self.names += 1
        suffix = ".bin" if big else self.rng.choice([".txt", ".json", ".bin", ""])
        path = self.root / f"{self.rng.choice(DIRECTORIES)}f{self.names:04d}{suffix}"
        self._write(path, self._big_size() if big else self._small_size())
        self.changes["add big" if big else "add"] += 1

    def populate(self, count: int) -> None:
        for _ in range(count):
            self.add()
        self.add(big=True)

    def change(self) -> None:
        """One round of 3 to 10 random changes; one in four rounds touches a big file."""
        for _ in range(self.rng.randint(3, 10)):
            files = self.files()
            operation = self.rng.choice(["add", "add", "delete", "resize", "rewrite", "rewrite"])
            if operation == "add" or not files:
                self.add()
                continue
            path = self.rng.choice([path for path in files if path.stat().st_size <= MULTIPART_THRESHOLD] or files)
            if operation == "delete":
                path.unlink()
            elif operation == "resize":
                old = path.stat().st_size
                self._write(path, next(size for size in iter(self._small_size, None) if size != old))
            else:
                self._write(path, path.stat().st_size)
            self.changes[operation] += 1
        if self.rng.random() < 0.25:
            big = self.big()
            operation = self.rng.choice(["add big", "delete big", "resize big", "rewrite big"])
            if operation == "add big" or not big:
                if len(big) < MAX_BIG:
                    self.add(big=True)
                return
            path = self.rng.choice(big)
            if operation == "delete big":
                path.unlink()
            elif operation == "resize big":
                self._write(path, self._big_size())
            else:
                self._write(path, path.stat().st_size)
            self.changes[operation] += 1


def wait_for_next_second(after: float) -> None:
    """Sleep until the wall clock is in a later whole second than ``after``.

    S3 keeps times to the second: a same-size rewrite is copied S3 -> S3 only when its new
    LastModified is a later second than the destination's copy of the previous round (the rule
    of ``aws s3 sync``), and a file uploaded in the second it was written looks newer than its
    upload next round. Starting each round's syncs in a second after the last round and after
    the changes makes the transfers depend on the seed only, whatever the speed.
    """
    while int(time.time()) <= int(after):
        time.sleep(int(after) + 1.01 - time.time())


@pytest.fixture
def proxies(moto: S3Server, rclone: S3Server) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    with (
        FaultProxy(moto.endpoint_url, rate=RATE, seed=SEED * 2 + 1) as moto_proxy,
        FaultProxy(rclone.endpoint_url, rate=RATE, seed=SEED * 2 + 2) as rclone_proxy,
    ):
        yield moto_proxy, rclone_proxy


@pytest.mark.timeout(300)
def test_soak_rounds_of_random_changes_through_every_leg_under_faults(
    moto: S3Server,
    rclone: S3Server,
    proxies: tuple[FaultProxy, FaultProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    print(f"soak: S3SYNC_SOAK_SEED={SEED}, {ROUNDS} rounds, fault rate {RATE}")
    moto_proxy, rclone_proxy = proxies
    use_connection(monkeypatch, "soak_moto", connection_json_via(moto, moto_proxy.endpoint_url))
    use_connection(monkeypatch, "soak_rclone", connection_json_via(rclone, rclone_proxy.endpoint_url))
    bucket_a, bucket_b, bucket_r = new_bucket(moto), new_bucket(moto), new_bucket(rclone)
    buckets = [(moto, bucket_a), (moto, bucket_b), (rclone, bucket_r)]
    source, target = tmp_path / "source", tmp_path / "download"
    tree = Tree(source, random.Random(SEED))
    tree.populate(40)
    totals: Counter[str] = Counter()
    started = time.monotonic()

    def leg(name: str, round_number: int, **kwargs: object) -> None:
        summary = S3SyncOperator(task_id="soak", delete=True, max_concurrency=4, **kwargs).execute({})
        for field in ("uploaded", "copied", "downloaded", "deleted", "retries"):
            totals[f"{name} {field}"] += summary.get(field) or 0
        assert summary["failed"] == 0, (round_number, name, summary)

    def check(name: str, round_number: int, actual: dict[str, bytes], expected: dict[str, bytes]) -> None:
        where = f"seed {SEED}, round {round_number}, after the {name}"
        assert tree_differences(actual, expected) == NO_DIFFERENCES, where
        left = {bucket: multipart_uploads(server, bucket) for server, bucket in buckets}
        assert left == {bucket: [] for _, bucket in buckets}, f"{where}: multipart uploads left"

    for round_number in range(1, ROUNDS + 1):
        if round_number > 1:
            tree.change()
        wait_for_next_second(time.time())  # after the writes and the last round: see there
        expected = local_tree(source)
        leg("upload", round_number, source=str(source), dest=f"s3://{bucket_a}/data/", dest_aws_conn_id="soak_moto",
            checksum=round_number % 3 == 0)  # fmt: skip
        check("upload", round_number, bucket_tree(moto, bucket_a, "data/"), expected)
        leg("copy", round_number, source=f"s3://{bucket_a}/data/", dest=f"s3://{bucket_b}/data/",
            source_aws_conn_id="soak_moto", dest_aws_conn_id="soak_moto")  # fmt: skip
        check("server-side copy", round_number, bucket_tree(moto, bucket_b, "data/"), expected)
        leg("stream", round_number, source=f"s3://{bucket_b}/data/", dest=f"s3://{bucket_r}/data/",
            source_aws_conn_id="soak_moto", dest_aws_conn_id="soak_rclone")  # fmt: skip
        check("streamed copy", round_number, bucket_tree(rclone, bucket_r, "data/"), expected)
        leg("download", round_number, source=f"s3://{bucket_r}/data/", dest=str(target),
            source_aws_conn_id="soak_rclone", exact_timestamps=True)  # fmt: skip
        check("download", round_number, local_tree(target), expected)
        print(
            f"round {round_number}: {len(expected)} files, {sum(map(len, expected.values())) / MIB:.1f} MiB; "
            f"faults so far: moto {moto_proxy.counts()}, rclone {rclone_proxy.counts()}"
        )

    print(f"soak: seed {SEED}, {ROUNDS} rounds in {time.monotonic() - started:.0f}s")
    print(f"changes: {dict(tree.changes)}")
    print(f"actions: {dict(totals)}")
    print(f"requests: moto {moto_proxy.requests}, rclone {rclone_proxy.requests}")
    # Not vacuous: every kind of change and of fault happened, and every leg had work to do.
    assert {"add", "delete", "resize", "rewrite"} <= set(tree.changes), tree.changes
    injected = {kind: moto_proxy.counts()[kind] + rclone_proxy.counts()[kind] for kind in KINDS}
    assert all(count > 0 for count in injected.values()), injected
    for name, field in [("upload", "uploaded"), ("copy", "copied"), ("stream", "copied"), ("download", "downloaded")]:
        assert totals[f"{name} {field}"] > 0 and totals[f"{name} deleted"] > 0, totals


def test_slowdown_answers_lower_the_concurrency_even_when_botocore_retries_them(
    moto: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: LogLines
) -> None:
    """Every request is answered ``503 SlowDown`` once: botocore's retries get each one through, so
    no transfer fails, yet the run is told and runs fewer objects at once."""
    source = tmp_path / "source"
    expected = {}
    for number in range(20):
        path = source / f"f{number:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(random.Random(number).randbytes(1000 + number))
        expected[path.name] = path.read_bytes()
    bucket = new_bucket(moto)
    with FaultProxy(moto.endpoint_url, rate=1.0, seed=SEED, max_faults_per_request=1, kinds=["503"]) as proxy:
        # botocore's client (the native one retries SlowDowns where nothing else can see them)
        use_connection(monkeypatch, "slow", connection_json_via(moto, proxy.endpoint_url, native_client=False))
        summary = S3SyncOperator(
            task_id="slow", source=str(source), dest=f"s3://{bucket}/", dest_aws_conn_id="slow", max_concurrency=8
        ).execute({})

    assert summary["uploaded"] == 20 and summary["failed"] == 0 and summary["slowdowns"] > 0
    assert proxy.counts()["503"] >= 20
    assert tree_differences(bucket_tree(moto, bucket), expected) == NO_DIFFERENCES
    assert "SlowDown from the server: at most 4 object(s) at once for a while (of 8)" in logs.at("warning")
