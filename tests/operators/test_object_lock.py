"""Object Lock retention and legal holds follow the data (moto server over HTTP).

moto stores whatever retention it is sent and enforces neither COMPLIANCE nor the bypass
header, so every refusal asserted here is this package's own.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from airflow_s3sync import ObjectLockRetentionOperator, S3SyncOperator
from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.plan.lock import format_date
from tests.conftest import new_bucket
from tests.support import S3Server, recorded, use_connection

PART = 5 * 1024 * 1024
NOW = datetime.now(UTC).replace(microsecond=0)


def in_days(n: float) -> datetime:
    return NOW + timedelta(days=n)


def lock_bucket(server: S3Server) -> str:
    name = f"lock-{uuid.uuid4().hex[:16]}"
    server.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def put(client, bucket: str, key: str, body: bytes = b"data", *, mode=None, until=None, hold=False) -> None:
    args = {}
    if mode:
        args.update(ObjectLockMode=mode, ObjectLockRetainUntilDate=until)
    if hold:
        args["ObjectLockLegalHoldStatus"] = "ON"
    client.put_object(Bucket=bucket, Key=key, Body=body, **args)


def lock_of(client, bucket: str, key: str) -> tuple[str | None, str | None, str]:
    head = client.head_object(Bucket=bucket, Key=key)
    until = head.get("ObjectLockRetainUntilDate")
    return (
        head.get("ObjectLockMode"),
        format_date(until) if until else None,
        head.get("ObjectLockLegalHoldStatus", "OFF"),
    )


def set_dest(client, bucket: str, key: str, *, mode=None, until=None, hold=None) -> None:
    """Give an existing destination object a lock state directly (moto accepts anything)."""
    if mode:
        client.put_object_retention(
            Bucket=bucket, Key=key, Retention={"Mode": mode, "RetainUntilDate": until}, BypassGovernanceRetention=True
        )
    if hold is not None:
        client.put_object_legal_hold(Bucket=bucket, Key=key, LegalHold={"Status": "ON" if hold else "OFF"})


def headers_of(request) -> dict[str, str]:
    """A sent request's headers as text."""
    return {name: value.decode() if isinstance(value, bytes) else value for name, value in request.headers.items()}


def sent_requests(hook, *operations: str) -> list[tuple[dict[str, str], bytes | None]]:
    """Record ``(headers, body)`` of every request of these operations the hook's client sends."""
    sent: list[tuple[dict[str, str], bytes | None]] = []
    for operation in operations:
        hook.conn.meta.events.register(
            f"before-send.s3.{operation}", lambda request, **_: sent.append((headers_of(request), request.body))
        )
    return sent


def bypass_headers(sent: list[tuple[dict[str, str], bytes | None]]) -> list[str | None]:
    return [headers.get("x-amz-bypass-governance-retention") for headers, _ in sent]


def retention(src: str, dst: str, **kwargs):
    return ObjectLockRetentionOperator(
        task_id="retention", source=f"s3://{src}/data/", dest=f"s3://{dst}/data/", **kwargs
    ).execute({})


def pair(moto: S3Server, key: str = "data/k", **source_lock) -> tuple[str, str, object]:
    """A source and a destination lock bucket holding ``key`` (the source with ``source_lock``)."""
    client = moto.client()
    src, dst = lock_bucket(moto), lock_bucket(moto)
    put(client, src, key, **source_lock)
    put(client, dst, key)
    return src, dst, client


SOURCES = {
    "governance": {"mode": "GOVERNANCE", "until": in_days(30)},
    "compliance": {"mode": "COMPLIANCE", "until": in_days(60)},
    "hold": {"hold": True},
    "both": {"mode": "COMPLIANCE", "until": in_days(90), "hold": True},
    "none": {},
}


def test_sync_then_retention_makes_the_destination_match_and_a_rerun_applies_nothing(moto_default, logs):
    client = moto_default.client()
    src, dst = lock_bucket(moto_default), lock_bucket(moto_default)
    for name, lock in SOURCES.items():
        put(client, src, f"data/{name}.bin", **lock)
    S3SyncOperator(task_id="sync", source=f"s3://{src}/data/", dest=f"s3://{dst}/data/").execute({})
    assert lock_of(client, dst, "data/both.bin") == (None, None, "OFF")  # aws s3 sync semantics: bytes only

    first = retention(src, dst)
    for name in SOURCES:
        key = f"data/{name}.bin"
        assert lock_of(client, dst, key) == lock_of(client, src, key), name
    assert (first["applied"], first["unchanged"], first["skipped"], first["failed"], first["objects"]) == (
        5,
        1,
        0,
        0,
        5,
    )
    assert (first["retention_set"], first["legal_hold_set"]) == (3, 2)
    assert f"retention: s3://{dst}/data/governance.bin GOVERNANCE until {format_date(in_days(30))}" in logs.at("info")
    assert f"legal-hold: s3://{dst}/data/hold.bin ON" in logs.at("info")

    second = retention(src, dst)
    assert (second["applied"], second["unchanged"], second["retention_set"], second["legal_hold_set"]) == (0, 5, 0, 0)


def test_compliance_is_never_weakened_even_though_the_server_would_accept_it(moto_default, logs):
    src, dst, client = pair(moto_default, mode="GOVERNANCE", until=in_days(10))
    set_dest(client, dst, "data/k", mode="COMPLIANCE", until=in_days(20))
    summary = retention(src, dst, bypass_governance_retention=True)
    assert (summary["skipped"], summary["applied"]) == (1, 0)
    assert lock_of(client, dst, "data/k")[:2] == ("COMPLIANCE", format_date(in_days(20)))
    assert any("COMPLIANCE is never weakened" in line for line in logs.at("warning"))


def test_compliance_is_never_shortened_but_is_extended(moto_default):
    src, dst, client = pair(moto_default, mode="COMPLIANCE", until=in_days(10))
    set_dest(client, dst, "data/k", mode="COMPLIANCE", until=in_days(20))
    assert retention(src, dst, bypass_governance_retention=True)["unchanged"] == 1
    assert lock_of(client, dst, "data/k")[:2] == ("COMPLIANCE", format_date(in_days(20)))

    client.put_object_retention(
        Bucket=src, Key="data/k", Retention={"Mode": "COMPLIANCE", "RetainUntilDate": in_days(40)}
    )
    assert retention(src, dst)["applied"] == 1
    assert lock_of(client, dst, "data/k")[:2] == ("COMPLIANCE", format_date(in_days(40)))


def test_governance_becomes_compliance_only_with_bypass_keeping_the_later_date(moto_default, logs):
    src, dst, client = pair(moto_default, mode="COMPLIANCE", until=in_days(10))
    set_dest(client, dst, "data/k", mode="GOVERNANCE", until=in_days(20))
    assert retention(src, dst)["skipped"] == 1
    assert lock_of(client, dst, "data/k")[:2] == ("GOVERNANCE", format_date(in_days(20)))
    assert any("switching GOVERNANCE to COMPLIANCE" in line for line in logs.at("warning"))

    operator = ObjectLockRetentionOperator(
        task_id="retention", source=f"s3://{src}/data/", dest=f"s3://{dst}/data/", bypass_governance_retention=True
    )
    sent = sent_requests(operator.dest_hook, "PutObjectRetention")
    assert operator.execute({})["applied"] == 1
    assert lock_of(client, dst, "data/k")[:2] == ("COMPLIANCE", format_date(in_days(20)))
    assert bypass_headers(sent) == ["true"]


def test_governance_is_shortened_only_with_bypass_and_the_bypass_header(moto_default, logs):
    src, dst, client = pair(moto_default, mode="GOVERNANCE", until=in_days(10))
    set_dest(client, dst, "data/k", mode="GOVERNANCE", until=in_days(20))
    refused = retention(src, dst)
    assert (refused["skipped"], refused["applied"]) == (1, 0)
    assert lock_of(client, dst, "data/k")[:2] == ("GOVERNANCE", format_date(in_days(20)))
    assert any("bypass_governance_retention=True" in line for line in logs.at("warning"))

    operator = ObjectLockRetentionOperator(
        task_id="retention", source=f"s3://{src}/data/", dest=f"s3://{dst}/data/", bypass_governance_retention=True
    )
    sent = sent_requests(operator.dest_hook, "PutObjectRetention")
    assert operator.execute({})["applied"] == 1
    assert lock_of(client, dst, "data/k")[:2] == ("GOVERNANCE", format_date(in_days(10)))
    assert bypass_headers(sent) == ["true"]


def test_legal_holds_are_released_only_when_asked(moto_default):
    src, dst, client = pair(moto_default)
    set_dest(client, dst, "data/k", hold=True)
    assert retention(src, dst)["skipped"] == 1
    assert lock_of(client, dst, "data/k")[2] == "ON"
    assert retention(src, dst, copy_legal_hold=False)["unchanged"] == 1
    assert retention(src, dst, release_legal_holds=True)["applied"] == 1
    assert lock_of(client, dst, "data/k")[2] == "OFF"


def test_an_expired_source_retention_is_skipped(moto_default, logs):
    src, dst, client = pair(moto_default, mode="GOVERNANCE", until=in_days(-1))
    summary = retention(src, dst)
    assert (summary["skipped"], summary["applied"]) == (1, 0)
    assert lock_of(client, dst, "data/k") == (None, None, "OFF")
    assert any("has expired" in line for line in logs.at("warning"))


def test_a_destination_without_object_lock_is_a_clear_error_and_nothing_changes(moto_default):
    client = moto_default.client()
    src, dst = lock_bucket(moto_default), new_bucket(moto_default)
    put(client, src, "data/k", mode="COMPLIANCE", until=in_days(5), hold=True)
    with pytest.raises(S3SyncError, match=rf"bucket '{dst}' .* does not have Object Lock enabled"):
        S3SyncOperator(
            task_id="sync", source=f"s3://{src}/data/", dest=f"s3://{dst}/data/", copy_object_lock=True
        ).execute({})
    assert client.list_objects_v2(Bucket=dst).get("KeyCount") == 0

    put(client, dst, "data/k")
    with pytest.raises(S3SyncError, match="does not have Object Lock enabled"):
        retention(src, dst)
    assert lock_of(client, dst, "data/k") == (None, None, "OFF")


def test_keys_restrict_the_work_to_those_keys(moto_default):
    client = moto_default.client()
    src, dst = lock_bucket(moto_default), lock_bucket(moto_default)
    for key in ("a", "b", "c"):
        put(client, src, f"data/{key}", mode="GOVERNANCE", until=in_days(3))
        put(client, dst, f"data/{key}")
    summary = retention(src, dst, keys=["a", "c"])
    assert summary["applied"] == 2
    assert [lock_of(client, dst, f"data/{key}")[0] for key in "abc"] == ["GOVERNANCE", None, "GOVERNANCE"]


def test_a_missing_object_is_skipped_not_failed(moto_default, logs):
    src, dst, _ = pair(moto_default, mode="GOVERNANCE", until=in_days(3))
    summary = retention(src, dst, keys=["k", "gone"])
    assert (summary["applied"], summary["skipped"], summary["failed"]) == (1, 1, 0)
    assert f"skip: s3://{src}/data/gone does not exist" in logs.at("warning")


def test_dryrun_reports_and_changes_nothing(moto_default, logs):
    src, dst, client = pair(moto_default, mode="COMPLIANCE", until=in_days(3), hold=True)
    summary = retention(src, dst, dryrun=True)
    assert (summary["applied"], summary["dryrun"]) == (2, True)
    assert lock_of(client, dst, "data/k") == (None, None, "OFF")
    assert f"(dryrun) legal-hold: s3://{dst}/data/k ON" in logs.at("info")


@pytest.mark.parametrize("size", [100, PART + 1], ids=["single-part", "multipart"])
def test_copy_object_lock_carries_retention_and_hold_at_write_time(moto, monkeypatch, size):
    conn = {"service_config": {"s3": {"transfer_config_args": {"multipart_threshold": PART}}}}
    use_connection(monkeypatch, "aws_default", moto.connection_json(**conn))
    client = moto.client()
    src, dst = lock_bucket(moto), lock_bucket(moto)
    put(client, src, "data/locked", b"x" * size, mode="COMPLIANCE", until=in_days(7), hold=True)
    put(client, src, "data/governed", b"y" * size, mode="GOVERNANCE", until=in_days(2))
    put(client, src, "data/free", b"z" * size)
    summary = S3SyncOperator(
        task_id="sync", source=f"s3://{src}/data/", dest=f"s3://{dst}/data/", copy_object_lock=True
    ).execute({})
    assert (summary["copied"], summary["failed"]) == (3, 0)
    for key in ("data/locked", "data/governed", "data/free"):
        assert lock_of(client, dst, key) == lock_of(client, src, key), key
    assert retention(src, dst)["unchanged"] == 3


def test_copy_object_lock_needs_two_s3_sides(tmp_path):
    with pytest.raises(S3SyncError, match="copy_object_lock=True needs an S3 source and an S3 destination"):
        S3SyncOperator(task_id="sync", source=str(tmp_path), dest="s3://bucket/x/", copy_object_lock=True)


def test_content_md5_replaces_crc_checksums_on_lock_writes(moto, monkeypatch):
    """For providers that reject boto3's default CRC checksums: the connection extra
    ``content_md5`` sends Content-MD5 instead, and moto accepts the lock writes."""
    use_connection(monkeypatch, "aws_default", moto.connection_json(content_md5=True))
    src, dst, client = pair(moto, mode="GOVERNANCE", until=in_days(3), hold=True)
    operator = ObjectLockRetentionOperator(task_id="retention", source=f"s3://{src}/data/", dest=f"s3://{dst}/data/")
    sent = sent_requests(operator.dest_hook, "PutObjectRetention", "PutObjectLegalHold")
    assert operator.execute({})["applied"] == 2
    assert len(sent) == 2
    for headers, body in sent:
        assert headers["Content-MD5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
        assert not [name for name in headers if name.lower().startswith("x-amz-checksum-")]
    assert lock_of(client, dst, "data/k")[2] == "ON"


def test_checksum_settings_come_from_the_connection_extra(moto, monkeypatch):
    config = {"request_checksum_calculation": "when_required", "response_checksum_validation": "when_required"}
    use_connection(monkeypatch, "aws_default", moto.connection_json(config_kwargs=config))
    operator = ObjectLockRetentionOperator(task_id="retention", source="s3://a/data/", dest="s3://b/data/")
    client_config = operator.dest_hook.conn.meta.config
    assert client_config.request_checksum_calculation == "when_required"
    assert client_config.response_checksum_validation == "when_required"


INTEGRITY = {
    "default": {},
    "when_required": {"config_kwargs": {"request_checksum_calculation": "when_required"}},
    "content_md5": {"content_md5": True},
}


@pytest.mark.parametrize("integrity", INTEGRITY)
@pytest.mark.parametrize("size", [100, PART + 1], ids=["single-part", "multipart"])
def test_copy_object_lock_between_accounts_streams_with_the_lock(moto, monkeypatch, size, integrity):
    """Another account's credentials: the copy streams (PutObject / multipart upload with lock
    headers) and every integrity setting gets the lock written."""
    parts = {"service_config": {"s3": {"transfer_config_args": {"multipart_threshold": PART}}}}
    use_connection(monkeypatch, "aws_default", moto.connection_json(**parts))
    other_account = dataclasses.replace(moto, access_key="another-account-key")
    client = moto.client()
    src, dst = lock_bucket(moto), lock_bucket(moto)
    put(client, src, "data/locked", b"x" * size, mode="COMPLIANCE", until=in_days(7), hold=True)
    with recorded(other_account, monkeypatch, "other_account", **parts, **INTEGRITY[integrity]) as proxy:
        operator = S3SyncOperator(
            task_id="sync",
            source=f"s3://{src}/data/",
            dest=f"s3://{dst}/data/",
            dest_aws_conn_id="other_account",
            copy_object_lock=True,
        )
        assert operator.execute({})["copied"] == 1
    copies = proxy.operations("CopyObject", "UploadPartCopy")
    writes = proxy.headers_of("PutObject", "CreateMultipartUpload")
    assert (copies, len(writes)) == ([], 1)  # streamed, not copied server-side
    assert writes[0]["x-amz-object-lock-mode"] == "COMPLIANCE"  # the lock goes with the write
    assert writes[0].get("content-md5") or any(name.startswith("x-amz-checksum-") for name in writes[0])
    assert lock_of(client, dst, "data/locked") == lock_of(client, src, "data/locked")


def test_server_side_copy_with_lock_carries_the_md5_of_its_empty_body(moto_default, monkeypatch):
    client = moto_default.client()
    src, dst = lock_bucket(moto_default), lock_bucket(moto_default)
    put(client, src, "data/k", mode="GOVERNANCE", until=in_days(1))
    with recorded(moto_default, monkeypatch, "aws_default") as proxy:
        operator = S3SyncOperator(
            task_id="sync", source=f"s3://{src}/data/", dest=f"s3://{dst}/data/", copy_object_lock=True
        )
        assert operator.execute({})["copied"] == 1
    [headers] = proxy.headers_of("CopyObject")
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(b"").digest()).decode()
    assert headers["x-amz-object-lock-mode"] == "GOVERNANCE"
