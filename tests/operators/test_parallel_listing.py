"""Both sides listed by key ranges at once, over real servers: moto's (S3's order) and
``rclone serve s3`` (its own order, by path segments: the ranges' checks find it out). The
decisions are those of a sequential listing, key for key, and the sync ends in the same place."""

from __future__ import annotations

import logging
import re

import pytest

from airflow_s3sync.execute.run import SyncOptions, SyncRun
from airflow_s3sync.hooks.s3 import S3SyncHook
from airflow_s3sync.locations import parse_location
from tests.conftest import new_bucket
from tests.quirks import QuirksProxy
from tests.support import NO_DIFFERENCES, S3Server, bucket_tree, tree_differences, use_connection

#: Keys whose S3 order and path-segment order differ, among many plain ones.
ODD = ["a-b", "a.txt", "a/b", "a/c", "ev/2026-11-01.manifest.json", "ev/2026-11-01/p0", "v1.2/y", "v1/x", "z z", "zé"]
SOURCE_KEYS = sorted({*ODD, *(f"d{i % 7}/k{i:04d}" for i in range(0, 180, 1))})
#: The destination: some keys the same, some other content, some extra (deleted with delete=True).
DEST_SAME = SOURCE_KEYS[::3]
DEST_OTHER = SOURCE_KEYS[1::7]
DEST_EXTRA = ["a-c", "a/a", "d3/k9999", "ev/2026-11-01/p9", "zz"]


def fill(server: S3Server) -> tuple[str, str]:
    client = server.client()
    source, dest = new_bucket(server), new_bucket(server)
    for key in SOURCE_KEYS:
        client.put_object(Bucket=source, Key=f"src/{key}", Body=f"<{key}>".encode())
    for key in DEST_SAME:
        client.put_object(Bucket=dest, Key=f"dst/{key}", Body=f"<{key}>".encode())
    for key in [*DEST_OTHER, *DEST_EXTRA]:
        client.put_object(Bucket=dest, Key=f"dst/{key}", Body=b"other content, longer")
    if server.name == "moto":  # rclone's store is a file system: a directory has no object of its own
        client.put_object(Bucket=dest, Key="dst/d1/", Body=b"")  # a directory marker: never listed
    return source, dest


def run(source: str, dest: str, *, threads: int, dryrun: bool, log: logging.Logger) -> tuple[list[str], dict]:
    hook = S3SyncHook(aws_conn_id="paged", page_size=7)
    sync = SyncRun(
        source=parse_location(f"s3://{source}/src/"),
        dest=parse_location(f"s3://{dest}/dst/"),
        source_hook=hook,
        dest_hook=S3SyncHook(aws_conn_id="paged", page_size=7),
        options=SyncOptions(delete=True, dryrun=dryrun, listing_threads=threads, max_concurrency=4),
        log=log,
    )
    report = sync.run()
    return sorted(report.changed_keys or []), report.summary()


def check_decisions(server: S3Server, caplog: pytest.LogCaptureFixture, threads: int) -> list[str]:
    """Dry runs with one sequence and with ``threads`` ranges: the same actions; then a real run
    ends with the destination equal to the source. The log lines of the ranged runs."""
    source, dest = fill(server)
    log = logging.getLogger("test.parallel_listing")
    caplog.set_level(logging.INFO, logger=log.name)

    def actions() -> list[str]:
        return sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith("(dryrun)"))

    sequential = run(source, dest, threads=1, dryrun=True, log=log)
    sequential_actions = actions()
    assert not any("key ranges at once" in r.getMessage() for r in caplog.records)
    deletes = [line for line in sequential_actions if line.startswith("(dryrun) delete:")]
    assert len(deletes) == len(DEST_EXTRA) and len(sequential_actions) > 100
    caplog.clear()

    ranged = run(source, dest, threads=threads, dryrun=True, log=log)
    assert actions() == sequential_actions and ranged == sequential
    said = [r.getMessage() for r in caplog.records]
    ranges = [line for line in said if "key ranges at once" in line]
    found = re.search(r"by (\d+) key ranges at once", ranges[0]) if len(ranges) == 1 else None
    assert found and 2 <= int(found.group(1)) <= threads, ranges  # at most threads: as the samples allow

    run(source, dest, threads=threads, dryrun=False, log=log)
    marker = {"d1/": b""} if server.name == "moto" else {}
    expected = {key: f"<{key}>".encode() for key in SOURCE_KEYS} | marker
    assert tree_differences(bucket_tree(server, dest, "dst/"), expected) == NO_DIFFERENCES
    return said


@pytest.mark.parametrize("threads", [2, 5])
def test_decisions_are_those_of_a_sequential_listing(
    server: S3Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, threads: int
) -> None:
    use_connection(monkeypatch, "paged", server.connection_json())
    said = check_decisions(server, caplog, threads)
    assert not any("out of S3's order" in line for line in said)


def test_a_server_listing_by_path_segments_is_found_out_and_sorted(
    moto: S3Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Behind a proxy that lists (and reads StartAfter) by path segments, ``a/b`` before ``a-b``:
    a range's end or the next range's start gives it away, and the plan starts again sorted."""
    with QuirksProxy(moto, path_order=True) as proxy:
        use_connection(monkeypatch, "paged", proxy.server.connection_json())
        said = check_decisions(moto, caplog, 5)
    assert any("out of S3's order" in line for line in said)
