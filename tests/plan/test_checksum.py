"""Content comparison from digests (checksum=True), without a server."""

from __future__ import annotations

import base64
import hashlib

import pytest

from airflow_s3sync.plan.checksum import (
    Digests,
    LocalDigestPlan,
    Verdict,
    compare_digests,
    local_digest_plan,
    multipart_etag,
    parse_etag,
    recorded_md5,
    with_recorded_md5,
)

MD5_A = hashlib.md5(b"a").hexdigest()
MD5_B = hashlib.md5(b"b").hexdigest()


def test_parse_etag_tells_md5_from_multipart_and_kms() -> None:
    assert parse_etag(f'"{MD5_A}"') == (MD5_A, None)
    assert parse_etag(f'"{MD5_A}-3"') == (None, f"{MD5_A}-3")
    assert parse_etag(f'"{MD5_A}"', md5_etag_possible=False) == (None, None)
    assert parse_etag(f'"{MD5_A}-3"', md5_etag_possible=False) == (None, None)
    assert parse_etag("opaque-provider-etag") == (None, None)
    assert parse_etag(None) == (None, None)


def test_multipart_etag_is_the_md5_of_the_part_md5s() -> None:
    data = b"x" * 10 + b"y" * 10 + b"z" * 5
    parts = [hashlib.md5(data[i : i + 10]).digest() for i in range(0, len(data), 10)]
    expected = hashlib.md5(b"".join(parts)).hexdigest() + "-3"
    assert multipart_etag(parts) == expected
    assert Digests(25, multipart_etag=expected).parts == 3


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        (Digests(1, checksums={"CRC32": "x"}), Digests(1, checksums={"CRC32": "x"}), Verdict.SAME),
        (Digests(1, checksums={"CRC32": "x"}), Digests(1, checksums={"CRC32": "y"}), Verdict.DIFFERENT),
        # every shared digest counts: a CRC that happens to match does not hide an MD5 that differs
        (
            Digests(1, md5=MD5_A, checksums={"CRC64NVME": "n", "CRC32": "x"}),
            Digests(1, md5=MD5_B, checksums={"CRC64NVME": "n"}),
            Verdict.DIFFERENT,
        ),
        (
            Digests(1, md5=MD5_A, checksums={"CRC32": "x"}),
            Digests(1, md5=MD5_A, checksums={"CRC32": "x"}),
            Verdict.SAME,
        ),
        (Digests(1, md5=MD5_A), Digests(1, md5=MD5_A), Verdict.SAME),
        (Digests(1, md5=MD5_A), Digests(1, md5=MD5_B), Verdict.DIFFERENT),
        (Digests(9, multipart_etag=f"{MD5_A}-2"), Digests(9, multipart_etag=f"{MD5_A}-2"), Verdict.SAME),
        (
            Digests(9, multipart_etag=f"{MD5_A}-2", part_size=5),
            Digests(9, multipart_etag=f"{MD5_B}-2", part_size=5),
            Verdict.DIFFERENT,
        ),
        # different part sizes (or unknown ones): multipart ETags cannot be compared
        (
            Digests(9, multipart_etag=f"{MD5_A}-2", part_size=5),
            Digests(9, multipart_etag=f"{MD5_B}-3", part_size=4),
            Verdict.UNKNOWN,
        ),
        (Digests(9, multipart_etag=f"{MD5_A}-2"), Digests(9, md5=MD5_A), Verdict.UNKNOWN),
        (Digests(9), Digests(9), Verdict.UNKNOWN),
        (Digests(9, md5=MD5_A), Digests(8, md5=MD5_A), Verdict.DIFFERENT),
        (Digests(1, checksums={"CRC32": "x"}), Digests(1, checksums={"CRC32C": "x"}), Verdict.UNKNOWN),
    ],
)
def test_compare_digests(a: Digests, b: Digests, verdict: Verdict) -> None:
    assert compare_digests(a, b)[0] is verdict
    assert compare_digests(b, a)[0] is verdict


def test_local_digest_plan_picks_what_the_remote_side_can_be_compared_with() -> None:
    assert local_digest_plan(Digests(1, md5=MD5_A, checksums={"CRC32": "x"}), computable=["CRC32"]) == (
        LocalDigestPlan(md5=True)
    )
    assert local_digest_plan(Digests(1, checksums={"CRC64NVME": "n", "CRC32": "x"}), computable=["CRC32"]) == (
        LocalDigestPlan(algorithm="CRC32")
    )
    remote = Digests(9, multipart_etag=f"{MD5_A}-2", part_size=5)
    assert local_digest_plan(remote, computable=[]) == LocalDigestPlan(part_size=5)
    # a multipart ETag (MD5-based) beats a CRC; a SHA beats both
    crc = Digests(9, multipart_etag=f"{MD5_A}-2", part_size=5, checksums={"CRC32": "x"})
    assert local_digest_plan(crc, computable=["CRC32"]) == LocalDigestPlan(part_size=5)
    sha = Digests(9, multipart_etag=f"{MD5_A}-2", part_size=5, checksums={"SHA256": "s", "CRC32": "x"})
    assert local_digest_plan(sha, computable=["CRC32", "SHA256"]) == LocalDigestPlan(algorithm="SHA256")
    no_part_size = Digests(9, multipart_etag=f"{MD5_A}-2", checksums={"CRC32": "x"})
    assert local_digest_plan(no_part_size, computable=["CRC32"]) == LocalDigestPlan(algorithm="CRC32")
    assert not local_digest_plan(no_part_size, computable=["CRC32"]).strong
    assert local_digest_plan(Digests(9, multipart_etag=f"{MD5_A}-2"), computable=["CRC32"]).empty


def test_the_strongest_agreement_is_named() -> None:
    a = Digests(1, md5=MD5_A, checksums={"SHA256": "s", "CRC32": "x"})
    assert compare_digests(a, a) == (Verdict.SAME, "SHA256 equal")
    b = Digests(1, md5=MD5_A, checksums={"CRC32": "x"})
    assert compare_digests(b, b) == (Verdict.SAME, "MD5 equal")


def test_an_md5_recorded_in_the_metadata_reads_back_and_ignores_what_is_no_md5() -> None:
    metadata = with_recorded_md5({"owner": "x"}, MD5_A)
    assert metadata == {"owner": "x", "md5chksum": base64.b64encode(bytes.fromhex(MD5_A)).decode()}
    assert recorded_md5(metadata) == MD5_A
    assert recorded_md5({"md5chksum": "not base64!"}) is None
    assert recorded_md5({"md5chksum": base64.b64encode(b"short").decode()}) is None
    assert recorded_md5(None) is None


FOREIGN = "0" * 32 + "-2"  # a multipart ETag that is no MD5 of part MD5s


@pytest.mark.parametrize(
    ("source", "dest", "verdict"),
    [
        # A copy in parts on a server with foreign multipart ETags: the recorded MD5 decides.
        (Digests(5, md5=MD5_A), Digests(5, multipart_etag=FOREIGN, recorded_md5=MD5_A), Verdict.SAME),
        (Digests(5, md5=MD5_A), Digests(5, multipart_etag=FOREIGN, recorded_md5=MD5_B), Verdict.DIFFERENT),
        (Digests(5, recorded_md5=MD5_A), Digests(5, recorded_md5=MD5_A), Verdict.SAME),
        (Digests(5, md5=MD5_A), Digests(5, multipart_etag=FOREIGN), Verdict.UNKNOWN),
        # What the server computed wins over what a writer recorded.
        (Digests(5, md5=MD5_A, recorded_md5=MD5_B), Digests(5, md5=MD5_A, recorded_md5=MD5_A), Verdict.SAME),
        (Digests(5, md5=MD5_A), Digests(5, md5=MD5_B, recorded_md5=MD5_A), Verdict.DIFFERENT),
    ],
)
def test_a_recorded_md5_decides_only_where_nothing_the_server_computed_does(
    source: Digests, dest: Digests, verdict: Verdict
) -> None:
    assert compare_digests(source, dest)[0] is verdict
    assert compare_digests(dest, source)[0] is verdict


def test_a_local_file_is_hashed_for_an_md5_recorded_in_the_metadata() -> None:
    plan = local_digest_plan(Digests(5, multipart_etag=FOREIGN, recorded_md5=MD5_A), computable=())
    assert plan == LocalDigestPlan(md5=True)
