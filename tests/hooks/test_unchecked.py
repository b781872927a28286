"""An object whose checksum header lies (moto's CopyObject of a multipart object keeps the
composite CRC32 without its "-N"): botocore rejects every full GET of it; the backend reads it
again without that check and verifies the bytes by the ETag instead — on moto's real server."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import pytest
from botocore.exceptions import FlexibleChecksumError

from airflow_s3sync import S3SyncHook
from airflow_s3sync.errors import S3SyncError
from airflow_s3sync.hooks.backend import ObjectRef, RetryUnchecked, is_transient
from airflow_s3sync.hooks.unchecked import VerifyingReader
from airflow_s3sync.plan.checksum import Digests
from tests.conftest import new_bucket
from tests.support import S3Server

MIB = 1024 * 1024
DATA = b"".join(bytes([n]) * MIB for n in range(6)) + b"tail"


def mislabelled_copy(server: S3Server) -> ObjectRef:
    """A multipart object with CRC32 checksums, and its CopyObject (whose CRC32 lies)."""
    bucket = new_bucket(server)
    client = server.client()
    upload = client.create_multipart_upload(Bucket=bucket, Key="big", ChecksumAlgorithm="CRC32")
    parts = []
    for number, start in enumerate(range(0, len(DATA), 5 * MIB), start=1):
        answer = client.upload_part(
            Bucket=bucket,
            Key="big",
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=DATA[start : start + 5 * MIB],
            ChecksumAlgorithm="CRC32",
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]})
    client.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    client.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "big"})
    with pytest.raises(FlexibleChecksumError):  # the quirk this is about
        client.get_object(Bucket=bucket, Key="copy")["Body"].read()
    return ObjectRef(bucket, "copy")


def test_a_whole_read_of_an_object_whose_checksum_lies_is_verified_by_its_etag(
    moto_default: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    ref = mislabelled_copy(moto_default)
    with caplog.at_level(logging.WARNING):
        data = S3SyncHook().backend.read_object(source=ref, etag=None)
    assert data.data == DATA
    assert any("checksum header does not match the bytes" in message for message in caplog.messages)


def test_a_download_of_an_object_whose_checksum_lies_is_verified_by_its_etag(
    moto_default: S3Server, tmp_path: Path
) -> None:
    ref = mislabelled_copy(moto_default)
    progress: list[int] = []
    target = tmp_path / "copy"
    S3SyncHook().backend.download_file(
        source=ref, path=str(target), size=len(DATA), etag=None, extra_args={}, progress=progress.append
    )
    assert target.read_bytes() == DATA
    assert sum(progress) == len(DATA)  # what the failed read reported is taken back
    assert [path.name for path in tmp_path.iterdir()] == ["copy"]


def test_a_stream_of_an_object_whose_checksum_lies_fails_once_then_reads_verified(moto_default: S3Server) -> None:
    ref = mislabelled_copy(moto_default)
    backend = S3SyncHook().backend
    head, body = backend.open_object(source=ref, etag=None)
    with pytest.raises(RetryUnchecked) as raised:
        while body.read(MIB):
            pass
    assert is_transient(raised.value)  # the job runner tries again
    head, body = backend.open_object(source=ref, etag=head.etag)
    read = io.BytesIO()
    while chunk := body.read(MIB):
        read.write(chunk)
    assert read.getvalue() == DATA


def test_bytes_that_do_not_match_the_etag_still_fail() -> None:
    good = hashlib.md5(b"abc", usedforsecurity=False).hexdigest()
    assert VerifyingReader(io.BytesIO(b"abc"), Digests(3, md5=good), "s3://b/k").read() == b"abc"
    with pytest.raises(S3SyncError, match=r"the bytes read have MD5 .* the object.s ETag says"):
        VerifyingReader(io.BytesIO(b"abd"), Digests(3, md5=good), "s3://b/k").read()
    with pytest.raises(S3SyncError, match="2 bytes read, the object has 3"):
        reader = VerifyingReader(io.BytesIO(b"ab"), Digests(3, md5=good), "s3://b/k")
        while reader.read(1):
            pass
    parts = [hashlib.md5(b"ab", usedforsecurity=False).digest(), hashlib.md5(b"c", usedforsecurity=False).digest()]
    composite = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest() + "-2"
    expected = Digests(3, multipart_etag=composite, part_size=2)
    reader = VerifyingReader(io.BytesIO(b"abc"), expected, "s3://b/k")
    assert reader.read(2) + reader.read(2) == b"abc"
    with pytest.raises(S3SyncError, match="make ETag"):
        VerifyingReader(io.BytesIO(b"abd"), expected, "s3://b/k").read()
