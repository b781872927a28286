"""SyncRun against in-memory backends: routing (to the fast clients and the full backend),
failures, retries, cancellation, dry runs, the delete gate, content checks in their own
workers, verification of streams, lock and tag follow-ups, SlowDowns — no S3 server."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from airflow_s3sync.errors import S3RequestError, S3SyncError
from airflow_s3sync.execute.run import SyncOptions, SyncRun
from airflow_s3sync.hooks.backend import IncompleteUpload, ObjectRef, Written
from airflow_s3sync.hooks.crt import CAPABILITIES as CRT
from airflow_s3sync.hooks.native import CAPABILITIES as OBSTORE
from airflow_s3sync.locations import S3Location, parse_location
from airflow_s3sync.plan import CompareMode
from airflow_s3sync.plan.checksum import Digests, recorded_md5
from airflow_s3sync.plan.lock import LockMode, LockState, Retention
from airflow_s3sync.plan.route import READ_WHOLE_MAX
from tests.execute.conftest import LogRecorder
from tests.execute.fakes import FakeBackend, FakeHook, FakeStore, client_error, md5_etag

BUCKET = "bkt"
OLD = datetime.now(UTC) - timedelta(days=1)
_VERBS = ("upload: ", "copy: ", "download: ", "delete: ", "(dryrun) ")


def hook_of(side: FakeBackend | FakeHook | None) -> FakeHook | None:
    """A hook for ``side``: a fake backend alone is a hook without fast clients."""
    return FakeHook(side) if isinstance(side, FakeBackend) else side


def make_run(
    source: str,
    dest: str,
    log: LogRecorder,
    *,
    source_hook: FakeBackend | FakeHook | None = None,
    dest_hook: FakeBackend | FakeHook | None = None,
    **options: Any,
) -> SyncRun:
    """A SyncRun (2 workers unless ``max_concurrency`` says otherwise)."""
    options.setdefault("max_concurrency", 2)
    return SyncRun(
        source=parse_location(source),
        dest=parse_location(dest),
        source_hook=hook_of(source_hook),  # type: ignore[arg-type]
        dest_hook=hook_of(dest_hook),  # type: ignore[arg-type]
        options=SyncOptions(**options),
        log=log.logger,
    )


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    """Files below ``root``, a day old (so they never look newer than what S3 holds)."""
    when = OLD.timestamp()
    for name, data in files.items():
        path = root.joinpath(*name.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (when, when))
    return root


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def with_obstore(
    *, multipart_threshold: int = 8 * 1024 * 1024, **options: Any
) -> tuple[FakeHook, FakeBackend, FakeBackend]:
    """(hook, full fake, obstore fake) of one service: the hook's transfer backends are obstore, then the full one."""
    full = FakeBackend(multipart_threshold=multipart_threshold, **options)
    fast = full.fast(OBSTORE)
    return FakeHook(full, fast), full, fast


def locked(until: datetime) -> dict[str, Any]:
    """The properties of an object under a governance retention until ``until`` and a legal hold."""
    return {"ObjectLockMode": "GOVERNANCE", "ObjectLockRetainUntilDate": until, "ObjectLockLegalHoldStatus": "ON"}


def lock_of(store: FakeStore, bucket: str, key: str) -> LockState:
    return LockState.from_head(store.get(bucket, key).properties)


# --------------------------------------------------------------------------- routing
def test_upload_small_objects_go_native_and_from_the_threshold_to_botocore(tmp_path: Path, log: LogRecorder) -> None:
    hook, full, obstore = with_obstore(multipart_threshold=1024)
    src = write_files(tmp_path / "src", {"big": b"b" * 1024, "bigger": b"c" * 5000, "small": b"s" * 1023})

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook).run()

    assert obstore.keys_of("upload_file") == ["p/small"]
    assert sorted(full.keys_of("upload_file")) == ["p/big", "p/bigger"]
    assert full.store.keys(BUCKET) == ["p/big", "p/bigger", "p/small"]
    assert full.store.data(BUCKET, "p/bigger") == b"c" * 5000
    assert report.counts["uploaded"] == 3
    assert report.bytes_transferred == 1024 + 5000 + 1023


def test_download_small_objects_go_native_and_from_the_threshold_to_botocore(tmp_path: Path, log: LogRecorder) -> None:
    hook, full, obstore = with_obstore(multipart_threshold=1024)
    full.store.put(BUCKET, "p/small", b"s" * 1023, mtime=OLD)
    full.store.put(BUCKET, "p/sub/big", b"b" * 1024, mtime=OLD)
    out = tmp_path / "out"

    report = make_run(f"s3://{BUCKET}/p/", str(out), log, source_hook=hook).run()

    assert obstore.keys_of("download_file") == ["p/small"]
    assert full.keys_of("download_file") == ["p/sub/big"]
    assert {call.details["etag"] for call in obstore.calls_named("download_file")} == {md5_etag(b"s" * 1023)}
    assert (out / "small").read_bytes() == b"s" * 1023
    assert (out / "sub" / "big").read_bytes() == b"b" * 1024
    assert int((out / "small").stat().st_mtime) == int(OLD.timestamp())  # the object's time
    assert report.counts["downloaded"] == 2


@pytest.mark.parametrize(
    ("dest", "object_key"),
    [
        (f"s3://{BUCKET}/a//", "a//f.txt"),  # an empty segment
        (f"s3://{BUCKET}/.", "./f.txt"),  # a '.' segment
        (f"s3://{BUCKET}/d/../", "d/../f.txt"),  # a '..' segment
        (f"s3://{BUCKET}/x\x01/", "x\x01/f.txt"),  # a control character
        ("s3://arn:aws:s3:us-east-1:123456789012:accesspoint/ap/p", "p/f.txt"),  # an access point
    ],
)
def test_uploads_of_keys_the_native_client_would_rewrite_go_to_botocore(
    tmp_path: Path, log: LogRecorder, dest: str, object_key: str
) -> None:
    hook, full, obstore = with_obstore()
    src = write_files(tmp_path / "src", {"f.txt": b"data"})

    make_run(str(src), dest, log, dest_hook=hook).run()

    assert obstore.calls_named("upload_file") == []
    assert full.keys_of("upload_file") == [object_key]
    location = parse_location(dest)
    assert isinstance(location, S3Location)
    assert full.store.data(location.bucket, object_key) == b"data"


def test_a_control_character_routes_that_one_object_to_botocore(tmp_path: Path, log: LogRecorder) -> None:
    hook, full, obstore = with_obstore()
    src = write_files(tmp_path / "src", {"plain.txt": b"1", "tab\tname.txt": b"2", "bell\x07.txt": b"3"})

    make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook).run()

    assert obstore.keys_of("upload_file") == ["p/plain.txt"]
    assert sorted(full.keys_of("upload_file")) == ["p/bell\x07.txt", "p/tab\tname.txt"]


@pytest.mark.parametrize(("prefix", "key"), [("a//", "a//b"), ("x/", "x/c\x01d")])
def test_downloads_of_keys_the_native_client_would_rewrite_go_to_botocore(
    tmp_path: Path, log: LogRecorder, prefix: str, key: str
) -> None:
    hook, full, obstore = with_obstore()
    full.store.put(BUCKET, key, b"odd", mtime=OLD)
    out = tmp_path / "out"

    make_run(f"s3://{BUCKET}/{prefix}", str(out), log, source_hook=hook).run()

    assert obstore.calls_named("download_file") == []
    assert full.keys_of("download_file") == [key]
    assert (out / key[len(prefix) :]).read_bytes() == b"odd"


def test_download_of_a_non_empty_directory_key_is_refused_and_reaches_no_backend(
    tmp_path: Path, log: LogRecorder
) -> None:
    """``dir/`` with data cannot be a local file name: the plan refuses it before routing (a
    zero-byte ``dir/`` is a directory marker the listing leaves out)."""
    hook, full, obstore = with_obstore()
    full.store.put(BUCKET, "p/dir/", b"not a marker", mtime=OLD)
    full.store.put(BUCKET, "p/marker/", b"", mtime=OLD)
    out = tmp_path / "out"

    report = make_run(f"s3://{BUCKET}/p", str(out), log, source_hook=hook).run()

    assert obstore.calls_named("download_file") == full.calls_named("download_file") == []
    assert report.counts["skipped"] == 1
    assert report.warnings == 1
    assert any("dir/" in message for message in log.at(logging.WARNING))
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("extra_args", "carrier"),
    [
        ({}, "obstore"),
        ({"ContentType": "text/plain"}, "obstore"),
        ({"CacheControl": "no-cache"}, "botocore"),
        ({"ContentType": "text/plain", "Metadata": {"a": "b"}}, "botocore"),
        ({"ServerSideEncryption": "AES256"}, "botocore"),
    ],
)
def test_request_arguments_other_than_content_type_route_the_run_to_botocore(
    tmp_path: Path, log: LogRecorder, extra_args: dict[str, Any], carrier: str
) -> None:
    hook, full, obstore = with_obstore()
    src = write_files(tmp_path / "src", {"a.txt": b"a", "b.txt": b"b"})

    make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, extra_args=extra_args).run()

    used, unused = (obstore, full) if carrier == "obstore" else (full, obstore)
    assert sorted(used.keys_of("upload_file")) == ["p/a.txt", "p/b.txt"]
    assert unused.calls_named("upload_file") == []
    assert all(call.details["extra_args"] == extra_args for call in used.calls_named("upload_file"))


def test_native_client_disabled_means_botocore_carries_everything(tmp_path: Path, log: LogRecorder) -> None:
    """A hook whose fast clients are off (``"native_client": false``) gives the full backend only."""
    full = FakeBackend()
    obstore = full.fast(OBSTORE)  # exists, but the hook does not offer it
    hook = FakeHook(full)
    src = write_files(tmp_path / "src", {"a": b"a"})

    make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook).run()

    assert full.keys_of("upload_file") == ["p/a"]
    assert obstore.calls == []
    assert hook.built == 1


def test_same_service_copy_is_one_copy_object_up_to_copy_cutoff_and_in_parts_above(log: LogRecorder) -> None:
    store = FakeStore()
    source = FakeBackend(store, name="source")
    dest = FakeBackend(store, name="dest")
    obstore = dest.fast(OBSTORE)  # carries no copy
    store.put("src", "in/at-cutoff", b"x" * 100, mtime=OLD)
    store.put("src", "in/above", b"y" * 101, mtime=OLD)
    store.put("src", "in/tiny", b"z", mtime=OLD)

    report = make_run(
        "s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=FakeHook(dest, obstore), copy_cutoff=100
    ).run()

    assert sorted(dest.keys_of("copy_object")) == ["out/at-cutoff", "out/tiny"]
    assert dest.keys_of("copy_in_parts") == ["out/above"]
    copies = dest.calls_named("copy_object", "copy_in_parts")
    assert {call.details["source"] for call in copies} == {
        ObjectRef("src", "in/above"),
        ObjectRef("src", "in/at-cutoff"),
        ObjectRef("src", "in/tiny"),
    }
    assert dest.calls_named("copy_in_parts")[0].details["source_backend"] is source
    assert source.writes() == [] and obstore.calls == []
    assert dest.calls_named("write_stream", "write_object") == []
    assert source.calls_named("open_object", "read_object") == []
    # Only the copy in parts reads the source's head: its MD5 goes into the copy's metadata.
    assert source.keys_of("head_object") == ["in/above"]
    part_copy_args = dest.calls_named("copy_in_parts")[0].details["extra_args"]
    assert part_copy_args["MetadataDirective"] == "REPLACE"
    assert recorded_md5(part_copy_args["Metadata"]) == md5(b"y" * 101)
    assert store.data("dst", "out/above") == b"y" * 101
    assert report.counts["copied"] == 3


@pytest.mark.parametrize(
    ("extra_args", "carrier"),
    [
        ({}, "awscrt"),
        ({"StorageClass": "STANDARD_IA"}, "awscrt"),
        ({"GrantRead": 'id="someone"'}, "botocore"),  # a header the CRT client does not send
    ],
)
def test_same_service_copies_go_to_a_fast_client_that_carries_copy_object(
    log: LogRecorder, extra_args: dict[str, Any], carrier: str
) -> None:
    """The CRT client carries CopyObject of any key (``a//b`` too); a multipart copy and request
    arguments it does not send stay on the full backend."""
    store = FakeStore()
    source, dest = FakeBackend(store, name="source"), FakeBackend(store, name="dest")
    obstore, crt = dest.fast(OBSTORE), dest.fast(CRT)
    for key in ("in/a//b", "in/plain"):
        store.put("src", key, b"small", mtime=OLD)
    store.put("src", "in/zbig", b"b" * 101, mtime=OLD)

    report = make_run(
        "s3://src/in",
        "s3://dst/out",
        log,
        source_hook=source,
        dest_hook=FakeHook(dest, obstore, crt),
        copy_cutoff=100,
        extra_args=extra_args,
    ).run()

    used, unused = (crt, dest) if carrier == "awscrt" else (dest, crt)
    assert sorted(used.keys_of("copy_object")) == ["out/a//b", "out/plain"]
    assert unused.calls_named("copy_object") == [] and obstore.calls == []
    assert dest.keys_of("copy_in_parts") == ["out/zbig"]  # UploadPartCopy: the full backend only
    assert all(call.details["extra_args"] == extra_args for call in used.calls_named("copy_object"))
    assert store.data("dst", "out/a//b") == b"small"
    assert report.counts["copied"] == 3


@pytest.mark.parametrize("answer_written", [False, True])
def test_copy_between_services_streams_and_verifies(log: LogRecorder, answer_written: bool) -> None:
    source = FakeBackend(name="source")
    dest = FakeBackend(name="dest", answer_written=answer_written)
    obstore = dest.fast(OBSTORE)
    small, large = b"small,data\n", os.urandom(READ_WHOLE_MAX + 1)
    source.store.put("src", "in/large.bin", large, mtime=OLD)
    source.store.put("src", "in/small.csv", small, mtime=OLD, ContentType="text/csv", Metadata={"k": "v"})

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=FakeHook(dest, obstore)).run()

    # Small objects are written whole by the native client (with the source's properties),
    # larger ones stream through the full backend.
    assert dest.keys_of("write_stream") == ["out/large.bin"]
    assert obstore.keys_of("write_object") == ["out/small.csv"]
    assert obstore.calls_named("write_object")[0].details["extra_args"] == {
        "ContentType": "text/csv",
        "Metadata": {"k": "v"},
    }
    assert dest.calls_named("copy_object", "copy_in_parts", "write_object") == []
    # Up to READ_WHOLE_MAX one GetObject serves properties and data; above, HeadObject then a
    # GetObject opened by the upload, all conditional on the listed ETag.
    assert source.keys_of("read_object") == ["in/small.csv"]
    assert source.keys_of("open_object") == source.keys_of("get_object") == ["in/large.bin"]
    assert source.calls_named("read_object")[0].details["etag"] == md5_etag(small)
    assert {call.details["etag"] for call in source.calls_named("open_object", "get_object")} == {md5_etag(large)}
    assert dest.store.data("dst", "out/large.bin") == large
    assert dest.store.data("dst", "out/small.csv") == small
    assert dest.store.get("dst", "out/small.csv").properties == {"ContentType": "text/csv", "Metadata": {"k": "v"}}
    # The write's own ETag answer spares the HeadObject; without one, digests() checks (the
    # native client always answers with the ETag).
    expected_digests = [] if answer_written else ["out/large.bin"]
    assert dest.keys_of("digests") == expected_digests
    assert report.counts["copied"] == 2
    assert report.bytes_transferred == len(small) + len(large)


@pytest.mark.parametrize("size", [3, READ_WHOLE_MAX + 1], ids=["whole", "streamed"])
def test_streamed_copy_fails_when_the_destination_does_not_hold_what_was_sent(log: LogRecorder, size: int) -> None:
    """Whole objects are checked against the PutObject's answer, streamed ones (no answer
    here) against a HeadObject: either way a mismatch fails the object, without a retry."""
    source, dest = FakeBackend(name="source"), FakeBackend(name="dest")
    source.store.put("src", "in/a", b"a" * size, mtime=OLD)
    write_object, digests = dest.write_object, dest.digests

    def wrong_answer(**kwargs: Any) -> Written:
        written = write_object(**kwargs)
        return Written(written.size, etag='"' + "0" * 32 + '"', md5_etag_possible=True)

    def wrong_digests(**kwargs: Any) -> Digests:
        digests(**kwargs)  # recorded
        return Digests(size, md5="0" * 32)

    dest.write_object = wrong_answer  # type: ignore[method-assign]
    dest.digests = wrong_digests  # type: ignore[method-assign]
    run = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest)

    with pytest.raises(S3SyncError, match=r"verification failed: s3://dst/out/a has MD5 0{32}"):
        run.run()
    assert len(dest.calls_named("write_object", "write_stream")) == 1  # a mismatch is not retried
    assert dest.keys_of("digests") == ([] if size == 3 else ["out/a"])
    assert run.report.counts["copied"] == 0


@pytest.mark.parametrize(
    ("properties", "options"),
    [
        ({"Expires": OLD}, {}),  # a property the native client cannot write
        ({"Metadata": {"content-type": "x"}}, {}),  # metadata it would take for a header
        ({}, {"copy_tags": True}),
        ({}, {"copy_object_lock": True}),
        ({}, {"extra_args": {"StorageClass": "STANDARD_IA"}}),
    ],
    ids=["expires", "metadata-named-like-a-header", "copy_tags", "copy_object_lock", "extra_args"],
)
def test_small_streamed_objects_take_botocore_for_what_the_native_client_cannot_carry(
    log: LogRecorder, properties: dict, options: dict
) -> None:
    source = FakeBackend(name="source")
    dest = FakeBackend(name="dest")
    obstore = dest.fast(OBSTORE)
    source.store.put("src", "in/a", b"abc", mtime=OLD, tags=[{"Key": "t", "Value": "1"}], **properties)

    report = make_run(
        "s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=FakeHook(dest, obstore), **options
    ).run()

    assert dest.keys_of("write_object") == ["out/a"] and obstore.calls_named("write_object") == []
    assert dest.store.data("dst", "out/a") == b"abc"
    assert report.counts["copied"] == 1


@pytest.mark.parametrize(
    ("properties", "options", "writer"),
    [
        ({}, {"copy_tags": True}, "awscrt"),
        ({}, {"copy_object_lock": True}, "awscrt"),
        ({}, {"extra_args": {"StorageClass": "STANDARD_IA"}}, "awscrt"),
        ({}, {}, "obstore"),  # the first client that carries it
        ({"Expires": OLD}, {}, "awscrt"),  # routed to obstore, which cannot write Expires: the next that can
        ({"Metadata": {"content-type": "x"}}, {}, "awscrt"),  # metadata obstore would take for a header
        ({}, {"extra_args": {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}}, "botocore"),
    ],
    ids=["copy_tags", "copy_object_lock", "extra_args", "plain", "expires", "metadata-named-like-a-header", "sse-c"],
)
def test_small_streamed_objects_go_to_the_first_fast_client_that_carries_them(
    log: LogRecorder, properties: dict, options: dict, writer: str
) -> None:
    """With obstore and the CRT client on both sides: the CRT client reads small objects whole
    (obstore has no such read) and writes what obstore cannot (lock and tag headers, any
    argument it sends, properties the source turns out to have); what neither carries goes to
    the full backend."""
    source = FakeBackend(name="source")
    source_crt = source.fast(CRT)
    dest = FakeBackend(name="botocore")
    obstore, crt = dest.fast(OBSTORE), dest.fast(CRT)
    source.store.put("src", "in/a", b"abc", mtime=OLD, tags=[{"Key": "t", "Value": "1"}], **properties)

    report = make_run(
        "s3://src/in",
        "s3://dst/out",
        log,
        source_hook=FakeHook(source, source.fast(OBSTORE), source_crt),
        dest_hook=FakeHook(dest, obstore, crt),
        **options,
    ).run()

    writers = {backend.name: backend.keys_of("write_object") for backend in (obstore, crt, dest)}
    assert writers == {name: (["out/a"] if name == writer else []) for name in writers}
    assert source_crt.keys_of("read_object") == ["in/a"]
    assert source.calls_named("read_object", "open_object") == []
    assert report.counts["copied"] == 1


def count_kinds_md5(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the bytes the transfer kinds hash, with MD5 or a ContentHasher (a list
    that grows)."""
    import airflow_s3sync.execute.kinds as kinds
    from airflow_s3sync.hooks.digest import ContentHasher

    sizes: list[int] = []
    real, real_update = hashlib.md5, ContentHasher.update

    def md5(data: bytes = b"", **kwargs: Any) -> Any:
        sizes.append(len(data))
        return real(data, **kwargs)

    def update(self: ContentHasher, data: bytes) -> None:
        sizes.append(len(data))
        real_update(self, data)

    monkeypatch.setattr(kinds, "hashlib", type("hashlib", (), {"md5": staticmethod(md5)}))
    monkeypatch.setattr(ContentHasher, "update", update)
    return sizes


@pytest.mark.parametrize("writer", ["awscrt", "obstore", "botocore"])
def test_a_small_stream_checks_the_bytes_read_against_the_source_md5_without_hashing_them(
    log: LogRecorder, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """The source's MD5 goes as Content-MD5 with a writer that sends it (the server refuses
    other bytes); obstore cannot send it, and its answer's ETag equal to that MD5 suffices.
    Either way the worker hashes nothing."""
    source = FakeBackend(name="source")
    source.store.put("src", "in/a", b"payload", mtime=OLD)
    dest = FakeBackend(name="botocore")
    fast = {"awscrt": (dest.fast(CRT),), "obstore": (dest.fast(OBSTORE),), "botocore": ()}[writer]
    hashed = count_kinds_md5(monkeypatch)

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=FakeHook(dest, *fast)).run()

    assert report.counts["copied"] == 1 and hashed == []
    [call] = (fast[0] if fast else dest).calls_named("write_object")
    sent_md5 = call.details["extra_args"].get("ContentMD5")
    expected = None if writer == "obstore" else base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    assert sent_md5 == expected
    assert dest.store.data("dst", "out/a") == b"payload"


@pytest.mark.parametrize(
    ("writer", "error"),
    [
        ("awscrt", "BadDigest"),
        ("obstore", r"verification failed: the bytes read \(MD5 [0-9a-f]{32}\) are not the source's"),
    ],
)
def test_small_stream_bytes_that_are_not_the_source_md5_fail_the_object(
    log: LogRecorder, writer: str, error: str
) -> None:
    """Bytes read that are not what the source's ETag says: refused by the server that got the
    MD5 as Content-MD5, or found by hashing them once the answer's ETag disagrees."""
    source = FakeBackend(name="source")
    stored = source.store.put("src", "in/a", b"payload", mtime=OLD)
    stored.etag = md5_etag(b"what the source said it holds")
    dest = FakeBackend(name="botocore")
    fast = dest.fast(CRT if writer == "awscrt" else OBSTORE)

    with pytest.raises(S3SyncError, match=error):
        make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=FakeHook(dest, fast)).run()
    if writer == "awscrt":
        assert ("dst", "out/a") not in dest.store.objects


PART = 256 * 1024


def multipart_source(*sizes: int) -> FakeBackend:
    """A source whose objects ``in/0``, ``in/1``, ... were uploaded in parts (their ETags tell
    no MD5 of the whole content)."""
    source = FakeBackend(name="source")
    for number, size in enumerate(sizes):
        source.store.put("src", f"in/{number}", os.urandom(size), mtime=OLD, part_size=PART)
    return source


def test_a_streamed_multipart_write_is_verified_by_its_part_md5s(log: LogRecorder) -> None:
    """No MD5 of the whole content is known or answered: the write's multipart ETag is checked
    against the part MD5s, with no HeadObject and no read-back."""
    source = multipart_source(READ_WHOLE_MAX + 1, 3 * PART)
    dest = FakeBackend(name="dest", answer_written=True, multipart_threshold=PART, part_size=PART)

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest).run()

    assert report.counts["copied"] == 2
    assert dest.keys_of("write_stream") == ["out/0", "out/1"]
    assert dest.calls_named("digests", "open_object", "get_object") == []
    for number in (0, 1):
        assert dest.store.data("dst", f"out/{number}") == source.store.data("src", f"in/{number}")
        assert "-" in dest.store.get("dst", f"out/{number}").etag


def test_a_server_telling_only_the_whole_md5_gets_one_read_back_then_the_whole_md5(log: LogRecorder) -> None:
    """Without an answer, the HeadObject of a server like rclone serve s3 tells the MD5 of the
    whole content: the first object is read back and its parts compared; from then on the
    whole MD5 is computed as well, and the HeadObject suffices."""
    source = multipart_source(3 * PART, 3 * PART)
    dest = FakeBackend(name="dest", multipart_threshold=PART, part_size=PART, head_md5=True)

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest, max_concurrency=1).run()

    assert report.counts["copied"] == 2
    assert dest.keys_of("digests") == ["out/0", "out/1"]
    assert dest.keys_of("get_object") == ["out/0"]  # the read-back
    for number in (0, 1):
        assert dest.store.data("dst", f"out/{number}") == source.store.data("src", f"in/{number}")


@pytest.mark.parametrize("head_md5", [True, False], ids=["read-back", "head"])
def test_a_streamed_multipart_write_holding_other_bytes_fails(log: LogRecorder, head_md5: bool) -> None:
    source = multipart_source(3 * PART)
    dest = FakeBackend(name="dest", multipart_threshold=PART, part_size=PART, head_md5=head_md5)
    write_stream = dest.write_stream

    def stores_other_bytes(**kwargs: Any) -> Written:
        written = write_stream(**kwargs)
        stored = dest.store.get("dst", "out/0")
        dest.store.put("dst", "out/0", b"x" + stored.data[1:], part_size=PART)
        return written

    dest.write_stream = stores_other_bytes  # type: ignore[method-assign]
    run = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest)

    with pytest.raises(
        S3SyncError, match=r"verification failed: s3://dst/out/0 has ETag [0-9a-f]{32}-3, the parts sent make"
    ):
        run.run()
    assert dest.keys_of("get_object") == (["out/0"] if head_md5 else [])
    assert run.report.counts["copied"] == 0


@pytest.mark.parametrize(("one_put_max", "call"), [(8 * PART, "put_stream"), (2 * PART, "write_stream")])
def test_a_stream_whose_source_md5_is_known_goes_in_one_put_up_to_its_limit(
    log: LogRecorder, one_put_max: int, call: str
) -> None:
    """With the source's MD5 known, the object goes in one PutObject whose Content-MD5 the server
    checks, verified by the answer's ETag (no HeadObject); above the backend's limit, in parts."""
    source = FakeBackend(name="source")
    data = os.urandom(3 * PART)
    source.store.put("src", "in/big", data, mtime=OLD)
    dest = FakeBackend(name="dest", multipart_threshold=PART, part_size=PART, one_put_max=one_put_max)

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest).run()

    assert report.counts["copied"] == 1
    assert [call.name for call in dest.calls_named("put_stream", "write_stream")] == [call]
    if call == "put_stream":
        assert dest.calls_named("put_stream")[0].details["md5"] == hashlib.md5(data).hexdigest()
        assert dest.calls_named("digests", "get_object") == []  # the answer's ETag sufficed
    assert dest.store.data("dst", "out/big") == data


def test_an_object_whose_one_put_failed_is_written_in_parts_on_the_next_attempt(log: LogRecorder) -> None:
    """A streamed PutObject cannot resend its body, so its failure costs the whole object: the
    job's next attempt writes that object in parts (each retried alone), the others stay one PUT."""
    source = FakeBackend(name="source")
    for name in ("in/a", "in/b"):
        source.store.put("src", name, os.urandom(3 * PART), mtime=OLD)
    dest = FakeBackend(name="dest", multipart_threshold=PART, part_size=PART, one_put_max=8 * PART)
    dest.fail(S3RequestError("PutObject", 500, "InternalError"), keys=["out/a"], on=["put_stream"], times=1)

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest).run()

    assert report.counts["copied"] == 2
    calls = [(call.name, call.key) for call in dest.calls_named("put_stream", "write_stream")]
    assert sorted(calls) == [("put_stream", "out/a"), ("put_stream", "out/b"), ("write_stream", "out/a")]
    assert calls.index(("put_stream", "out/a")) < calls.index(("write_stream", "out/a"))
    for name in ("a", "b"):
        assert dest.store.data("dst", f"out/{name}") == source.store.data("src", f"in/{name}")


def test_a_native_streamed_write_whose_etag_is_not_the_md5_is_checked_with_a_head(log: LogRecorder) -> None:
    """The native client's answer does not say whether the object is KMS-encrypted: an ETag that
    is not the MD5 sent is no verdict; a HeadObject decides."""
    source = FakeBackend(name="source")
    dest = FakeBackend(name="dest")
    obstore = dest.fast(OBSTORE)
    source.store.put("src", "in/a", b"abc", mtime=OLD)
    write_object = obstore.write_object

    def kms_like(**kwargs: Any) -> Written:
        written = write_object(**kwargs)
        assert written.md5_etag_possible is None  # as obstore answers
        return Written(written.size, etag='"' + "f" * 32 + '"')

    obstore.write_object = kms_like  # type: ignore[method-assign]

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=FakeHook(dest, obstore)).run()

    assert report.counts["copied"] == 1
    assert obstore.keys_of("write_object") == ["out/a"]
    assert dest.keys_of("digests") == ["out/a"]


def test_reading_back_an_object_written_with_a_customer_key_sends_the_key_again(log: LogRecorder) -> None:
    source, dest = FakeBackend(name="source"), FakeBackend(name="dest")
    source.store.put("src", "in/a", b"x" * (READ_WHOLE_MAX + 1), mtime=OLD)
    sse_c = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32}

    make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest, extra_args=sse_c).run()

    assert dest.calls_named("write_stream")[0].details["extra_args"] == sse_c
    [check] = dest.calls_named("digests")
    assert check.details["read_args"] == sse_c


# --------------------------------------------------------------------------- fast backends and dry runs
@pytest.mark.parametrize("dryrun", [True, False])
def test_fast_backends_are_built_once_a_run_moves_data_never_in_a_dry_run(
    tmp_path: Path, log: LogRecorder, dryrun: bool
) -> None:
    source_hook, source, source_fast = with_obstore()
    dest_hook, dest, dest_fast = with_obstore()
    source.store.put("src", "in/a", b"a", mtime=OLD)

    make_run("s3://src/in", "s3://dst/out", log, source_hook=source_hook, dest_hook=dest_hook, dryrun=dryrun).run()

    assert (source_hook.built, dest_hook.built) == ((0, 0) if dryrun else (1, 1))
    # The fast clients neither carry nor listen to anything in a dry run.
    assert (dest_fast.slowdown_listeners == []) is dryrun
    assert (dest_fast.keys_of("write_object") == []) is dryrun
    assert source_fast.calls == []  # obstore reads no object whole
    assert dest.store.keys("dst") == ([] if dryrun else ["out/a"])


# --------------------------------------------------------------------------- content checks
def test_content_checks_run_in_checker_workers_while_every_transfer_slot_is_taken(
    tmp_path: Path, log: LogRecorder
) -> None:
    """``checksum=True`` with one transfer worker: while that worker is held by an upload, the
    content checks (HeadObject, hashing) still run, in a worker of their own, and hand the
    object whose content differs to the transfer worker."""
    dest = FakeBackend()
    same = {name: f"same {name}".encode() for name in ("b", "d", "e")}
    src = write_files(tmp_path / "src", {"a": b"new", "c": b"local c", **same})
    for name, data in same.items():
        dest.store.put(BUCKET, f"p/{name}", data)
    dest.store.put(BUCKET, "p/c", b"other c")  # same size, other content
    release = threading.Event()
    dest.block(release, keys=["p/a"], on=["upload_file"])
    checked: list[bool] = []

    def release_after_the_checks() -> None:
        try:
            checked.append(dest.wait_calls("digests", 4))
        finally:
            release.set()

    releaser = threading.Thread(target=release_after_the_checks, name="test-releaser")
    releaser.start()
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, mode=CompareMode.CHECKSUM, max_concurrency=1)
    report = run_or_stop(run, timeout=10.0)
    releaser.join(5)

    assert checked == [True], "no content check ran while the only transfer worker was busy"
    assert sorted(dest.keys_of("digests")) == ["p/b", "p/c", "p/d", "p/e"]
    assert dest.keys_of("upload_file") == ["p/a", "p/c"]
    assert dest.store.data(BUCKET, "p/c") == b"local c"
    assert report.counts["uploaded"] == 2 and report.counts["skipped"] == 3
    transfer_threads = {call.thread for call in dest.calls_named("upload_file")}
    check_threads = {call.thread for call in dest.calls_named("digests")}
    assert len(transfer_threads) == len(check_threads) == 1  # one worker of each
    assert transfer_threads.isdisjoint(check_threads)
    assert threading.main_thread() not in transfer_threads | check_threads


def run_or_stop(run: SyncRun, *, timeout: float) -> Any:
    """``run.run()`` in a thread of its own; a run still going after ``timeout`` seconds (a
    deadlock) is stopped and fails the test instead of hanging it."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["report"] = run.run()
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=target, name="test-run", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        run.stop()
        thread.join(timeout)
        pytest.fail(f"the run did not finish in {timeout} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["report"]


def sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_checksum_verdicts_decide_what_is_uploaded(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    files = {"same": b"same", "differs": b"local", "kms-sha": b"kms", "kms-none": b"kmsx", "longer": b"longer"}
    src = write_files(tmp_path / "src", files)
    dest.store.put(BUCKET, "p/same", b"same")
    dest.store.put(BUCKET, "p/differs", b"other")
    # SSE-KMS: the ETag is no MD5; a full-object SHA-256 still compares, nothing else cannot.
    dest.store.put(BUCKET, "p/kms-sha", b"kms", ServerSideEncryption="aws:kms", ChecksumSHA256=sha256(b"kms"))
    dest.store.put(BUCKET, "p/kms-none", b"KMSX", ServerSideEncryption="aws:kms")
    dest.store.put(BUCKET, "p/longer", b"short")  # sizes differ: transferred without a check

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, mode=CompareMode.CHECKSUM).run()

    assert sorted(dest.keys_of("upload_file")) == ["p/differs", "p/longer"]
    assert sorted(dest.keys_of("digests")) == ["p/differs", "p/kms-none", "p/kms-sha", "p/same"]
    assert report.counts["uploaded"] == 2 and report.counts["skipped"] == 3
    assert dest.store.data(BUCKET, "p/kms-none") == b"KMSX"  # the sizes decided, with a warning
    assert report.warnings == 1
    [warning] = log.at(logging.WARNING)
    assert warning.startswith("warning: compared ") and "kms-none" in warning and "by size only" in warning


def test_a_dry_run_with_checksum_reads_and_reports_but_writes_nothing(tmp_path: Path, log: LogRecorder) -> None:
    hook, full, obstore = with_obstore()
    src = write_files(tmp_path / "src", {"differs": b"local", "same": b"same"})
    full.store.put(BUCKET, "p/differs", b"other")
    full.store.put(BUCKET, "p/same", b"same")

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, mode=CompareMode.CHECKSUM, dryrun=True).run()

    assert sorted(full.keys_of("digests")) == ["p/differs", "p/same"]
    assert full.writes() == [] and obstore.calls == [] and hook.built == 0
    assert report.counts["uploaded"] == 1 and report.counts["skipped"] == 1
    assert log.actions() == [f"(dryrun) upload: {src / 'differs'} to s3://{BUCKET}/p/differs"]
    assert full.store.data(BUCKET, "p/differs") == b"other"


def test_a_download_with_checksum_hashes_the_local_file(tmp_path: Path, log: LogRecorder) -> None:
    source = FakeBackend()
    source.store.put(BUCKET, "p/same", b"same", mtime=OLD)
    source.store.put(BUCKET, "p/differs", b"remote", mtime=OLD)
    out = write_files(tmp_path / "out", {"same": b"same", "differs": b"localx"})

    report = make_run(f"s3://{BUCKET}/p", str(out), log, source_hook=source, mode=CompareMode.CHECKSUM).run()

    assert sorted(source.keys_of("digests")) == ["p/differs", "p/same"]
    assert source.keys_of("download_file") == ["p/differs"]
    assert (out / "differs").read_bytes() == b"remote"
    assert report.counts["downloaded"] == 1 and report.counts["skipped"] == 1


# --------------------------------------------------------------------------- failures
@pytest.mark.parametrize(
    "error",
    [S3SyncError("refused by the test"), client_error("AccessDenied", 403)],
    ids=["S3SyncError", "ClientError-403"],
)
def test_one_permanent_failure_among_many(tmp_path: Path, log: LogRecorder, error: Exception) -> None:
    dest = FakeBackend()
    dest.store.put(BUCKET, "p/zz-stale", b"stale")
    files = {f"f{index:02d}": f"data {index}".encode() for index in range(20)}
    src = write_files(tmp_path / "src", files)
    dest.fail(error, keys=["p/f07"], times=None)
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, delete=True)

    with pytest.raises(S3SyncError) as raised:
        run.run()

    message = str(raised.value)
    assert "nothing was deleted" in message and "1 item(s) failed" in message
    assert f"upload {src / 'f07'} to s3://{BUCKET}/p/f07" in message
    assert dest.keys_of("upload_file").count("p/f07") == 1  # permanent: one attempt
    written = {f"p/{name}" for name in files if name != "f07"}
    assert set(dest.store.keys(BUCKET)) == written | {"p/zz-stale"}
    assert dest.calls_named("delete_keys", "delete_key") == []
    assert run.report.counts["uploaded"] == 19 and run.report.failure_count == 1
    assert run.report.retries == 0


@pytest.mark.parametrize(
    "error",
    [EndpointConnectionError(endpoint_url="x"), client_error("SlowDown", 503)],
    ids=["EndpointConnectionError", "SlowDown-503"],
)
def test_a_transient_failure_is_retried(tmp_path: Path, log: LogRecorder, error: Exception) -> None:
    dest = FakeBackend()
    files = {f"f{index}": bytes([65 + index]) * (100 + index) for index in range(5)}
    src = write_files(tmp_path / "src", files)
    dest.fail(error, keys=["p/f3"], times=1, partial=True)  # half the bytes, then the error

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest).run()

    assert dest.keys_of("upload_file").count("p/f3") == 2
    assert report.retries == 1
    assert report.counts["uploaded"] == 5 and report.failure_count == 0
    assert dest.store.data(BUCKET, "p/f3") == files["f3"]
    assert report.bytes_transferred == sum(map(len, files.values()))  # the failed attempt's bytes taken back
    assert any(message.startswith("retrying upload") for message in log.at(logging.WARNING))


def test_a_transient_failure_that_persists_fails_after_three_attempts(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    src = write_files(tmp_path / "src", {"a": b"a", "b": b"b"})
    dest.fail(EndpointConnectionError(endpoint_url="x"), keys=["p/b"], times=None)
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest)

    with pytest.raises(S3SyncError, match=r"upload .*/b to s3://bkt/p/b: Could not connect"):
        run.run()
    assert dest.keys_of("upload_file").count("p/b") == 3
    assert run.report.retries == 2
    assert dest.store.keys(BUCKET) == ["p/a"]


def test_a_permanent_failure_is_not_retried(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    src = write_files(tmp_path / "src", {"a": b"a"})
    dest.fail(client_error("AccessDenied", 403), keys=["p/a"], times=1)  # would succeed on a retry
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest)

    with pytest.raises(S3SyncError, match="AccessDenied"):
        run.run()
    assert dest.keys_of("upload_file") == ["p/a"]
    assert run.report.retries == 0
    assert dest.store.keys(BUCKET) == []


@pytest.mark.parametrize("size", [100, READ_WHOLE_MAX + 1], ids=["whole", "streamed"])
def test_a_retried_streamed_copy_reads_the_source_again(log: LogRecorder, size: int) -> None:
    source, dest = FakeBackend(name="source"), FakeBackend(name="dest")
    data = os.urandom(size)
    source.store.put("src", "in/a", data, mtime=OLD)
    if size <= READ_WHOLE_MAX:  # the write fails after half its bytes
        dest.fail(EndpointConnectionError(endpoint_url="x"), keys=["out/a"], on=["write_object"], partial=True)
        reads = ("read_object",)
    else:  # the source's body is cut short while the upload reads it
        source.fail(EndpointConnectionError(endpoint_url="x"), keys=["in/a"], on=["get_object"])
        reads = ("open_object", "get_object")

    report = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest).run()

    for read in reads:  # a fresh read (and body) for the second attempt
        assert source.keys_of(read) == ["in/a", "in/a"]
    assert dest.store.data("dst", "out/a") == data
    assert report.retries == 1 and report.bytes_transferred == len(data)


def test_a_failed_check_is_reported_and_blocks_the_deletes(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    src = write_files(tmp_path / "src", {"a": b"aaa"})
    dest.store.put(BUCKET, "p/a", b"bbb")
    dest.store.put(BUCKET, "p/stale", b"x")
    dest.fail(client_error("AccessDenied", 403, "HeadObject"), keys=["p/a"], on=["digests"], times=None)
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, mode=CompareMode.CHECKSUM, delete=True)

    with pytest.raises(S3SyncError, match=r"nothing was deleted: .*/a to s3://bkt/p/a: .*AccessDenied"):
        run.run()
    assert dest.keys_of("digests") == ["p/a"]  # permanent: one attempt
    assert dest.calls_named("upload_file", "delete_keys") == []


# --------------------------------------------------------------------------- cancellation
def _stop_when_blocked(run: SyncRun, hook: FakeBackend, release: threading.Event, count: int) -> threading.Thread:
    """A thread that stops ``run`` once ``count`` calls wait at ``hook``'s gate, then lets them go."""

    def stop() -> None:
        try:
            if hook.wait_blocked(count):
                run.stop()
        finally:
            release.set()

    thread = threading.Thread(target=stop, name="test-stopper")
    thread.start()
    return thread


def test_stop_during_transfers_fails_the_run_and_starts_nothing_new(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    dest.store.put(BUCKET, "p/000-stale", b"old")  # planned for deletion before any transfer
    src = write_files(tmp_path / "src", {f"f{index}": b"data" for index in range(10)})
    release = threading.Event()
    dest.block(release, on=["upload_file"])
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, delete=True)  # 2 workers
    stopper = _stop_when_blocked(run, dest, release, 2)

    with pytest.raises(S3SyncError, match="the run was stopped"):
        run.run()
    stopper.join(5)

    assert run.runner.stopping
    assert len(dest.calls_named("upload_file")) == 2  # only the two that were running
    assert dest.calls_named("delete_keys", "delete_key") == []
    assert "p/000-stale" in dest.store.keys(BUCKET)
    assert run.report.counts["uploaded"] == 2
    assert any("not deleting 1 item(s)" in message for message in log.at(logging.WARNING))


def test_stop_during_content_checks_stops_both_worker_pools(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    files = {f"f{index}": b"data" for index in range(10)}
    src = write_files(tmp_path / "src", files)
    for name in files:
        dest.store.put(BUCKET, f"p/{name}", b"DATA")  # same size: every object is checked
    release = threading.Event()
    dest.block(release, on=["digests"])
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, mode=CompareMode.CHECKSUM)
    stopper = _stop_when_blocked(run, dest, release, 2)

    with pytest.raises(S3SyncError, match="the run was stopped"):
        run.run()
    stopper.join(5)

    assert run.runner.stopping and run.checkers.stopping
    assert len(dest.calls_named("digests")) == 2  # only the two checks that were running
    assert dest.calls_named("upload_file") == []  # their transfers were never started
    assert dest.store.data(BUCKET, "p/f0") == b"DATA"


def test_stop_during_deletes_stops_deleting(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    for index in range(5):
        dest.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"keep": b"k"})
    release = threading.Event()
    dest.block(release, on=["delete_key"])
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, delete=True)
    stopper = _stop_when_blocked(run, dest, release, 1)

    with pytest.raises(S3SyncError, match="sync stopped while deleting"):
        run.run()
    stopper.join(5)

    assert dest.keys_of("delete_key") == ["p/gone0"]
    assert dest.store.keys(BUCKET) == ["p/gone1", "p/gone2", "p/gone3", "p/gone4", "p/keep"]


# --------------------------------------------------------------------------- dry run
def test_dry_run_changes_nothing_and_reports_the_plan(tmp_path: Path, log: LogRecorder) -> None:
    hook, full, obstore = with_obstore()
    full.store.put(BUCKET, "p/stale1", b"1")
    full.store.put(BUCKET, "p/stale2", b"2")
    src = write_files(tmp_path / "src", {"a": b"a", "b": b"bb", "sub/c": b"ccc"})

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, delete=True, dryrun=True).run()

    assert full.writes() == [] and obstore.calls == [] and hook.built == 0
    assert {call.name for call in full.calls} == {"check_access", "list_entries"}
    assert report.counts["uploaded"] == 3 and report.counts["deleted"] == 2
    assert report.dryrun and report.bytes_transferred == 0
    assert report.changed_keys == ["a", "b", "sub/c"]
    actions = log.actions()
    assert len(actions) == 5 and all(line.startswith("(dryrun) ") for line in actions)
    assert f"(dryrun) upload: {src / 'sub' / 'c'} to s3://{BUCKET}/p/sub/c" in actions
    assert f"(dryrun) delete: s3://{BUCKET}/p/stale1" in actions
    assert full.store.keys(BUCKET) == ["p/stale1", "p/stale2"]


def test_dry_run_download_neither_writes_nor_creates_the_directory(tmp_path: Path, log: LogRecorder) -> None:
    hook, full, obstore = with_obstore()
    full.store.put(BUCKET, "p/a", b"a", mtime=OLD)
    out = tmp_path / "missing"

    report = make_run(f"s3://{BUCKET}/p", str(out), log, source_hook=hook, dryrun=True).run()

    assert full.writes() == [] and obstore.calls == [] and hook.built == 0
    assert not out.exists()
    assert report.counts["downloaded"] == 1
    assert log.actions() == [f"(dryrun) download: s3://{BUCKET}/p/a to {out / 'a'}"]


def test_dry_run_above_max_delete_warns_instead_of_failing(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    for index in range(3):
        dest.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"a": b"a"})

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, delete=True, dryrun=True, max_delete=2).run()

    assert report.counts["deleted"] == 3
    assert dest.writes() == []
    assert any("a real run would fail: refusing to delete 3" in message for message in log.at(logging.WARNING))


# --------------------------------------------------------------------------- the delete gate
def test_a_listing_failure_means_no_delete(log: LogRecorder) -> None:
    store = FakeStore()
    backend = FakeBackend(store)
    for name in ("a", "b", "c", "d"):
        store.put("src", f"in/{name}", name.encode(), mtime=OLD)
    store.put("dst", "out/a0-dest-only", b"keep me")  # planned for deletion before the failure
    backend.fail_listing("src", after=2, error=EndpointConnectionError(endpoint_url="x"))
    run = make_run("s3://src/in", "s3://dst/out", log, source_hook=backend, dest_hook=backend, delete=True)

    with pytest.raises(S3SyncError, match=r"nothing was deleted: a listing failed \(Could not connect"):
        run.run()

    assert backend.calls_named("delete_keys", "delete_key") == []
    assert "out/a0-dest-only" in store.keys("dst")
    assert set(backend.keys_of("copy_object")) <= {"out/a", "out/b"}  # nothing past the failure
    assert any(message.startswith("listing failed") for message in log.at(logging.ERROR))


def test_a_destination_listing_failure_means_no_delete(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    for index in range(4):
        dest.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"z": b"z"})
    dest.fail_listing(BUCKET, after=3, error=S3SyncError("listing cut short"))
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, delete=True)

    with pytest.raises(S3SyncError, match="a listing failed"):
        run.run()
    assert dest.calls_named("delete_keys", "delete_key") == []
    assert len(dest.store.keys(BUCKET)) == 4


@pytest.mark.parametrize(("max_delete", "deleted"), [(2, False), (3, True)])
def test_max_delete_is_checked_before_the_first_delete(
    tmp_path: Path, log: LogRecorder, max_delete: int, deleted: bool
) -> None:
    dest = FakeBackend()
    for index in range(3):
        dest.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"new": b"n"})
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, delete=True, max_delete=max_delete)

    if deleted:
        run.run()
        assert dest.keys_of("delete_key") == ["p/gone0", "p/gone1", "p/gone2"]
        assert dest.store.keys(BUCKET) == ["p/new"]
        return
    with pytest.raises(S3SyncError, match=r"refusing to delete 3 item.*max_delete=2; nothing was deleted"):
        run.run()
    assert dest.calls_named("delete_keys", "delete_key") == []
    assert dest.store.keys(BUCKET) == ["p/gone0", "p/gone1", "p/gone2", "p/new"]  # the upload happened


def test_a_clean_run_deletes_exactly_the_destination_only_keys(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    src = write_files(tmp_path / "src", {"keep": b"same", "new": b"new", "sub/changed": b"longer now"})
    dest.store.put(BUCKET, "p/keep", b"same")  # same size, newer at S3: skipped
    dest.store.put(BUCKET, "p/sub/changed", b"short")
    for key in ("p/gone", "p/sub/gone", "p2/outside", "other/x", "p"):
        dest.store.put(BUCKET, key, b"dest")

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, delete=True).run()

    assert dest.keys_of("delete_key") == ["p/gone", "p/sub/gone"]
    assert len(dest.calls_named("delete_keys")) == 1
    assert sorted(dest.keys_of("upload_file")) == ["p/new", "p/sub/changed"]
    assert dest.store.keys(BUCKET) == ["other/x", "p", "p/keep", "p/new", "p/sub/changed", "p2/outside"]
    assert report.counts == {"uploaded": 2, "copied": 0, "downloaded": 0, "deleted": 2, "skipped": 1, "failed": 0}
    assert f"delete: s3://{BUCKET}/p/sub/gone" in log.actions()


def test_a_failed_delete_fails_the_run_after_the_others(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend()
    for index in range(3):
        dest.store.put(BUCKET, f"p/gone{index}", b"old")
    src = write_files(tmp_path / "src", {"a": b"a"})
    dest.fail(client_error("AccessDenied", 403, "DeleteObjects"), keys=["p/gone1"], on=["delete_key"], times=None)
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, delete=True)

    with pytest.raises(S3SyncError, match=r"sync failed: 1 item\(s\) failed: delete s3://bkt/p/gone1: .*AccessDenied"):
        run.run()
    assert dest.store.keys(BUCKET) == ["p/a", "p/gone1"]
    assert run.report.counts["deleted"] == 2


def test_a_local_destination_deletes_only_after_every_download(tmp_path: Path, log: LogRecorder) -> None:
    source = FakeBackend()
    source.store.put(BUCKET, "p/a", b"a", mtime=OLD)
    source.store.put(BUCKET, "p/b", b"b", mtime=OLD)
    out = write_files(tmp_path / "out", {"local-only": b"x"})
    source.fail(client_error("NoSuchKey", 404, "GetObject"), keys=["p/b"], times=None)

    with pytest.raises(S3SyncError, match="nothing was deleted"):
        make_run(f"s3://{BUCKET}/p", str(out), log, source_hook=source, delete=True).run()
    assert (out / "local-only").exists() and (out / "a").read_bytes() == b"a" and not (out / "b").exists()

    source = FakeBackend(source.store)  # the next run is clean
    source.store.put(BUCKET, "p/b", b"b", mtime=OLD)
    make_run(f"s3://{BUCKET}/p", str(out), log, source_hook=source, delete=True).run()
    assert sorted(path.name for path in out.iterdir()) == ["a", "b"]


def test_a_failure_the_report_missed_still_blocks_the_deletes(log: LogRecorder) -> None:
    """Deletes ask the runner too: a job whose failure could not be recorded in the report
    (a reporting bug) still makes the run unclean."""
    source, dest = FakeBackend(name="source"), FakeBackend(name="dest")
    source.store.put("src", "in/a", b"a", mtime=OLD)
    dest.store.put("dst", "out/stale", b"x", mtime=OLD)
    dest.fail(S3SyncError("boom"), keys=["out/a"], on=["write_object"], times=None)
    run = make_run("s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest, delete=True)
    run.report.failed = lambda description: (_ for _ in ()).throw(RuntimeError("reporting bug"))  # type: ignore[method-assign]

    with pytest.raises(S3SyncError, match="1 transfer"):
        run.run()
    assert dest.keys_of("write_object") == ["out/a"]
    assert dest.calls_named("delete_keys") == []


# --------------------------------------------------------------------------- Object Lock and tags
def test_a_same_service_copy_carries_the_lock_and_a_multipart_copy_gets_lock_and_tags_after(
    log: LogRecorder,
) -> None:
    """CopyObject carries the source's lock (as headers) and tags itself; UploadPartCopy
    carries neither here (the lock headers are dropped, as moto does), so the new object gets
    them once complete."""
    store = FakeStore()
    source, dest = FakeBackend(store, name="source"), FakeBackend(store, name="dest")
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    tags = [{"Key": "team", "Value": "data"}]
    store.put("src", "in/large", b"l" * 101, mtime=OLD, tags=tags, **locked(until))
    store.put("src", "in/small", b"s", mtime=OLD, tags=tags, **locked(until))

    report = make_run(
        "s3://src/in",
        "s3://dst/out",
        log,
        source_hook=source,
        dest_hook=dest,
        copy_cutoff=100,
        copy_object_lock=True,
        copy_tags=True,
    ).run()

    assert [call.bucket for call in dest.calls_named("check_object_lock")] == ["dst"]
    assert sorted(source.keys_of("lock_state")) == ["in/large", "in/small"]
    assert source.keys_of("object_tags") == ["in/large"]  # CopyObject copies tags itself
    [copy] = dest.calls_named("copy_object")
    assert copy.key == "out/small" and copy.details["extra_args"] == locked(until)
    assert dest.keys_of("copy_in_parts") == ["out/large"]
    assert sorted(dest.keys_of("put_retention", "put_legal_hold")) == ["out/large", "out/large"]
    assert [(call.key, call.details["tags"]) for call in dest.calls_named("put_tags")] == [("out/large", tags)]
    expected = LockState(retention=Retention(LockMode.GOVERNANCE, until), legal_hold=True)
    for key in ("out/large", "out/small"):
        assert lock_of(store, "dst", key) == expected
        assert store.get("dst", key).tags == tags
    assert report.counts["copied"] == 2 and report.warnings == 0


def test_a_streamed_copy_carries_the_lock_and_a_multipart_one_gets_it_again_after(log: LogRecorder) -> None:
    source = FakeBackend(name="source")
    dest = FakeBackend(name="dest", multipart_threshold=1024)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    source.store.put("src", "in/large", b"l" * 2048, mtime=OLD, **locked(until))
    source.store.put("src", "in/small", b"s", mtime=OLD, **locked(until))

    report = make_run(
        "s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest, copy_object_lock=True
    ).run()

    [whole] = dest.calls_named("write_object")
    assert whole.key == "out/small" and locked(until).items() <= whole.details["extra_args"].items()
    [streamed] = dest.calls_named("write_stream")
    assert streamed.key == "out/large" and locked(until).items() <= streamed.details["extra_args"].items()
    # The multipart write lost its lock headers: it gets the lock again; the whole write kept them.
    assert sorted(dest.keys_of("put_retention", "put_legal_hold")) == ["out/large", "out/large"]
    assert dest.keys_of("lock_state") == ["out/large"]
    expected = LockState(retention=Retention(LockMode.GOVERNANCE, until), legal_hold=True)
    assert lock_of(dest.store, "dst", "out/large") == lock_of(dest.store, "dst", "out/small") == expected
    assert report.counts["copied"] == 2


@pytest.mark.parametrize("run_tags", [None, "team=ops"])
def test_streamed_copies_carry_the_source_tags_unless_the_run_gives_its_own(
    log: LogRecorder, run_tags: str | None
) -> None:
    source, dest = FakeBackend(name="source"), FakeBackend(name="dest")
    source.store.put(
        "src", "in/a", b"a", mtime=OLD, tags=[{"Key": "team", "Value": "data"}, {"Key": "x", "Value": "y z"}]
    )
    source.store.put("src", "in/b", b"b" * (READ_WHOLE_MAX + 1), mtime=OLD, tags=[{"Key": "team", "Value": "data"}])
    extra_args = {"Tagging": run_tags} if run_tags else {}

    make_run(
        "s3://src/in", "s3://dst/out", log, source_hook=source, dest_hook=dest, copy_tags=True, extra_args=extra_args
    ).run()

    if run_tags:
        assert source.calls_named("object_tags") == []
        assert (
            dest.store.get("dst", "out/a").tags
            == dest.store.get("dst", "out/b").tags
            == [{"Key": "team", "Value": "ops"}]
        )
    else:
        assert sorted(source.keys_of("object_tags")) == ["in/a", "in/b"]
        assert dest.store.get("dst", "out/a").tags == [{"Key": "team", "Value": "data"}, {"Key": "x", "Value": "y z"}]
        assert dest.store.get("dst", "out/b").tags == [{"Key": "team", "Value": "data"}]
    assert dest.calls_named("put_tags") == []  # the tags go with the write


# --------------------------------------------------------------------------- SlowDown
@pytest.mark.parametrize("heard_by", ["obstore", "botocore"])
def test_a_slowdown_any_backend_hears_slows_both_worker_pools(tmp_path: Path, log: LogRecorder, heard_by: str) -> None:
    """Every backend of a side listens for SlowDowns its client retried by itself: the fast
    client's uploads, the full backend's listing. One halves transfer and checker workers alike."""
    hook, full, obstore = with_obstore()
    src = write_files(tmp_path / "src", {"a": b"a", "b": b"b"})
    if heard_by == "obstore":
        obstore.slow_down(keys=["p/a"], on=["upload_file"])
    else:
        full.slow_down(on=["list_entries"])
    run = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook, mode=CompareMode.CHECKSUM)

    report = run.run()

    assert report.counts["uploaded"] == 2 and report.retries == 0
    assert (run.runner.slowdowns, run.checkers.slowdowns, report.slowdowns) == (1, 0, 1)  # counted once
    assert run.runner.lowest_concurrency == run.checkers.lowest_concurrency == 1  # 2 workers each, halved


def test_the_report_counts_each_slowdown_heard_once(tmp_path: Path, log: LogRecorder) -> None:
    hook, _, obstore = with_obstore()
    src = write_files(tmp_path / "src", {"a": b"a"})
    obstore.slow_down(keys=["p/a"], on=["upload_file"])

    report = make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=hook).run()

    assert report.slowdowns == 1


# --------------------------------------------------------------------------- stale multipart uploads
@pytest.mark.parametrize("dryrun", [False, True])
def test_stale_multipart_uploads_under_the_prefix_are_aborted_first(
    tmp_path: Path, log: LogRecorder, dryrun: bool
) -> None:
    dest = FakeBackend()
    now = datetime.now(UTC)
    dest.uploads[BUCKET] = [
        IncompleteUpload("p/old", "u1", now - timedelta(days=2)),
        IncompleteUpload("p/young", "u2", now - timedelta(hours=1)),
        IncompleteUpload("other/old", "u3", now - timedelta(days=2)),
    ]
    src = write_files(tmp_path / "src", {"a": b"a"})

    report = make_run(
        str(src),
        f"s3://{BUCKET}/p",
        log,
        dest_hook=dest,
        dryrun=dryrun,
        abort_incomplete_uploads_after=timedelta(days=1),
    ).run()

    assert report.aborted_uploads == 1
    assert [call.bucket for call in dest.calls_named("incomplete_uploads")] == [BUCKET]
    assert [(call.key, call.details["upload_id"]) for call in dest.calls_named("abort_upload")] == (
        [] if dryrun else [("p/old", "u1")]
    )
    assert len(dest.uploads[BUCKET]) == (3 if dryrun else 2)


def test_a_file_uploaded_in_parts_records_its_md5_in_the_metadata(tmp_path: Path, log: LogRecorder) -> None:
    dest = FakeBackend(multipart_threshold=100)
    src = write_files(tmp_path / "src", {"big": b"b" * 100, "small": b"s" * 99})

    make_run(str(src), f"s3://{BUCKET}/p", log, dest_hook=dest, extra_args={"Metadata": {"k": "v"}}).run()

    args = {call.key: call.details["extra_args"] for call in dest.calls_named("upload_file")}
    assert args["p/big"]["Metadata"] == {
        "k": "v",
        "md5chksum": base64.b64encode(bytes.fromhex(md5(b"b" * 100))).decode(),
    }
    assert args["p/small"] == {"Metadata": {"k": "v"}}  # one PutObject: its ETag is the MD5
