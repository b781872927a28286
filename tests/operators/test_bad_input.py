"""Bad input is a clear error before any request, and nothing changes on either side.

The connection points at a loopback proxy in front of moto that counts what reaches it: each
refusal here leaves that count at zero (moto itself is set up and read directly).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from airflow_s3sync import S3SyncOperator
from airflow_s3sync.errors import InvalidLocationError, S3SyncError
from tests.conftest import new_bucket, write
from tests.faults import FaultProxy
from tests.support import S3Server, connection_json_via, use_connection


@pytest.fixture
def counted(moto: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """``aws_default`` goes through a proxy that counts requests (and injects no fault)."""
    with FaultProxy(moto.endpoint_url, rate=0.0, seed=1) as proxy:
        use_connection(monkeypatch, "aws_default", connection_json_via(moto, proxy.endpoint_url))
        yield proxy


@pytest.fixture
def state(moto: S3Server, tmp_path):
    """A bucket and a directory with content, and a function that reads both."""
    bucket = new_bucket(moto)
    client = moto.client()
    for key in ("2026-11-23/a", "2026-11-24/b", "root"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")
    write(tmp_path / "src" / "new.txt")

    def read():
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        files = sorted(p.name for p in (tmp_path / "src").rglob("*"))
        return sorted(o["Key"] for o in listed), files

    return bucket, tmp_path / "src", read


def rendered(op: S3SyncOperator, **params: object) -> S3SyncOperator:
    """Render the operator's templates as a task run would, with these params."""
    op.render_template_fields({"params": params})
    return op


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_max_concurrency_must_be_positive(bad, state, counted):
    bucket, src, _read = state
    with pytest.raises(ValueError, match="max_concurrency must be a positive integer"):
        S3SyncOperator(task_id="s", source=str(src), dest=f"s3://{bucket}", max_concurrency=bad)


def test_size_only_with_checksum_contradict(state, counted):
    bucket, src, _read = state
    with pytest.raises(ValueError, match="size_only=True and checksum=True contradict each other"):
        S3SyncOperator(task_id="s", source=str(src), dest=f"s3://{bucket}", size_only=True, checksum=True)


@pytest.mark.parametrize("side", ["source", "dest"])
def test_a_templated_location_that_renders_empty(side, state, counted):
    bucket, src, read = state
    before = read()
    locations = {"source": str(src), "dest": f"s3://{bucket}/x/"}
    locations[side] = "{{ params.where }}"
    op = rendered(S3SyncOperator(task_id="s", **locations), where="")
    with pytest.raises(InvalidLocationError, match=f"{side} was rendered from a template to an empty string"):
        op.execute({})
    assert read() == before and counted.requests == 0


@pytest.mark.parametrize("template", ["s3://{bucket}/{{{{ params.day }}}}/", "s3://{bucket}/{{{{ params.day }}}}"])
def test_a_templated_prefix_that_renders_empty_with_delete_is_refused(template, state, counted):
    bucket, src, read = state
    before = read()
    op = rendered(
        S3SyncOperator(task_id="s", source=str(src), dest=template.format(bucket=bucket), delete=True), day=""
    )
    with pytest.raises(S3SyncError, match=r"rendered from a template with an empty prefix.*allow_bucket_root=True"):
        op.execute({})
    assert read() == before and counted.requests == 0


def test_a_templated_prefix_with_its_param_or_without_delete_runs(state, counted):
    bucket, src, read = state
    dest = f"s3://{bucket}/{{{{ params.day }}}}"
    # The same template with its param syncs the day's prefix only.
    day = rendered(S3SyncOperator(task_id="s", source=str(src), dest=dest, delete=True), day="2026-11-24")
    assert day.execute({})["deleted"] == 1
    assert read()[0] == ["2026-11-23/a", "2026-11-24/new.txt", "root"]
    # Without delete, or when the whole bucket is meant, an empty prefix is fine.
    assert rendered(S3SyncOperator(task_id="s", source=str(src), dest=dest), day="").execute({})["uploaded"] == 1
    whole = rendered(
        S3SyncOperator(task_id="s", source=str(src), dest=dest, delete=True, allow_bucket_root=True), day=""
    )
    assert whole.execute({})["deleted"] == 3
    assert read()[0] == ["new.txt"]


@pytest.mark.parametrize(("key_range", "message"), [(["b", "a"], "must sort before end"), (["a", "a"], "must sort")])
def test_key_range_start_after_not_before_end(key_range, message, state, counted):
    bucket, src, _read = state
    with pytest.raises(S3SyncError, match=message):
        S3SyncOperator(task_id="s", source=str(src), dest=f"s3://{bucket}", key_range=key_range)
    op = rendered(
        S3SyncOperator(task_id="s", source=str(src), dest=f"s3://{bucket}", key_range="{{ params.r }}"), r=key_range
    )
    with pytest.raises(S3SyncError, match=message):
        op.execute({})
    assert counted.requests == 0


def test_an_unknown_connection_id(state, counted):
    bucket, src, read = state
    before = read()
    op = S3SyncOperator(task_id="s", source=str(src), dest=f"s3://{bucket}", dest_aws_conn_id="aws_prod_typo")
    with pytest.raises(S3SyncError, match="the connection 'aws_prod_typo' is not defined"):
        op.execute({})
    assert read() == before and counted.requests == 0


def test_abort_incomplete_uploads_after_must_be_a_positive_timedelta(state, counted):
    bucket, src, _read = state
    for bad in (3600, timedelta(0), "1d"):
        with pytest.raises(S3SyncError, match="abort_incomplete_uploads_after must be a positive"):
            S3SyncOperator(task_id="s", source=str(src), dest=f"s3://{bucket}", abort_incomplete_uploads_after=bad)
    with pytest.raises(S3SyncError, match="needs an S3 destination"):
        S3SyncOperator(
            task_id="s", source=f"s3://{bucket}", dest=str(src), abort_incomplete_uploads_after=timedelta(days=1)
        )
