"""The routing table: which call carries each transfer, which backend carries it (read off the
backends' capabilities), what is read first, what follows."""

import pytest

from airflow_s3sync.hooks.botocore_backend import CAPABILITIES as BOTOCORE
from airflow_s3sync.hooks.native import CAPABILITIES as OBSTORE
from airflow_s3sync.plan import Direction
from airflow_s3sync.plan.capabilities import Capabilities, Operation
from airflow_s3sync.plan.route import NoCarrierError, RouteContext, TransferKind, TransferSpec, route

MIB = 1024 * 1024
UP, COPY, DOWN = Direction.UPLOAD, Direction.COPY, Direction.DOWNLOAD
FAST = (OBSTORE, BOTOCORE)  # a side with the native client: it first, botocore last
ONLY = (BOTOCORE,)
#: A client that carries copies and whole reads and writes with every property, lock and tags
#: (what the AWS Common Runtime client declares).
COPIER = Capabilities(
    "copier",
    operations=frozenset({Operation.COPY, Operation.READ_WHOLE, Operation.WRITE_WHOLE}),
    max_size=16 * MIB,
    request_args=frozenset({"StorageClass", "ContentType", "Metadata", "Expires", "Tagging"}),
    properties=BOTOCORE.properties,
    lock_headers=True,
    tags=True,
)


def up(**kw):
    return RouteContext(UP, dest=kw.pop("dest", FAST), **kw)


def down(**kw):
    return RouteContext(DOWN, source=kw.pop("source", FAST), **kw)


def copy(**kw):
    return RouteContext(COPY, source=kw.pop("source", ONLY), dest=kw.pop("dest", ONLY), **kw)


def stream(**kw):
    return RouteContext(COPY, streamed=True, source=kw.pop("source", ONLY), dest=kw.pop("dest", FAST), **kw)


@pytest.mark.parametrize(
    ("context", "size", "key", "expected"),
    [
        # uploads and downloads: the native client for small objects with keys it keeps as they are
        (up(), 10, "a/b.txt", TransferSpec(TransferKind.UPLOAD, backend=0)),
        (up(dest=ONLY), 10, "a/b.txt", TransferSpec(TransferKind.UPLOAD, backend=0)),
        (up(), 8 * MIB, "big", TransferSpec(TransferKind.UPLOAD, backend=1)),  # multipart: s3transfer's parts
        (up(), 8 * MIB - 1, "big", TransferSpec(TransferKind.UPLOAD, backend=0)),
        (up(multipart_threshold=64 * MIB), 16 * MIB, "big", TransferSpec(TransferKind.UPLOAD, backend=1)),  # memory
        (up(), 10, "ctl\x01.txt", TransferSpec(TransferKind.UPLOAD, backend=1)),
        (up(request_args=frozenset({"ContentType"})), 10, "k", TransferSpec(TransferKind.UPLOAD, backend=0)),
        (up(request_args=frozenset({"StorageClass"})), 10, "k", TransferSpec(TransferKind.UPLOAD, backend=1)),
        (up(dest_access_point=True), 10, "k", TransferSpec(TransferKind.UPLOAD, backend=1)),
        (down(), 10, "a/b.txt", TransferSpec(TransferKind.DOWNLOAD, backend=0, set_mtime=True)),
        (down(), 10, "a//b.txt", TransferSpec(TransferKind.DOWNLOAD, backend=1, set_mtime=True)),
        (down(), 9 * MIB, "a", TransferSpec(TransferKind.DOWNLOAD, backend=1, set_mtime=True)),
        # same-endpoint copies: one CopyObject up to the cutoff, parts above it
        (copy(), 10, "k", TransferSpec(TransferKind.COPY)),
        (copy(dest=(COPIER, BOTOCORE)), 10, "k", TransferSpec(TransferKind.COPY, backend=0)),
        (copy(dest=(COPIER, BOTOCORE)), 10, "a//k", TransferSpec(TransferKind.COPY, backend=0)),  # any key
        (
            copy(dest=(COPIER, BOTOCORE), request_args=frozenset({"ACL"})),
            10,
            "k",
            TransferSpec(TransferKind.COPY, backend=1),
        ),
        (copy(copy_cutoff=5 * MIB), 5 * MIB, "k", TransferSpec(TransferKind.COPY)),
        (copy(copy_cutoff=5 * MIB), 5 * MIB + 1, "k", TransferSpec(TransferKind.PART_COPY)),
        (
            copy(dest=(COPIER, BOTOCORE), copy_cutoff=5 * MIB),
            5 * MIB + 1,
            "k",
            TransferSpec(TransferKind.PART_COPY, backend=1),
        ),
        (
            copy(copy_object_lock=True, copy_tags=True),
            20 * MIB,
            "k",
            TransferSpec(TransferKind.COPY, read_lock=True),  # CopyObject carries lock headers and tags itself
        ),
        (
            copy(copy_cutoff=MIB, copy_object_lock=True, copy_tags=True),
            20 * MIB,
            "k",
            TransferSpec(TransferKind.PART_COPY, read_lock=True, read_tags=True, lock_after=True, tags_after=True),
        ),
        # between endpoints: streamed and verified; lock again after a multipart write;
        # small objects read whole and written by one PutObject, by the first backend that carries it
        (stream(), MIB, "k", TransferSpec(TransferKind.STREAM, backend=0, alternates=(1,), whole=True, verify=True)),
        (stream(), MIB + 1, "k", TransferSpec(TransferKind.STREAM, backend=1, verify=True)),
        (stream(), 10, "a//k", TransferSpec(TransferKind.STREAM, backend=1, whole=True, verify=True)),
        (
            stream(source=(COPIER, BOTOCORE)),
            10,
            "k",
            TransferSpec(TransferKind.STREAM, backend=0, alternates=(1,), reader=0, whole=True, verify=True),
        ),
        (
            stream(source=(COPIER, BOTOCORE)),
            2 * MIB,
            "k",
            TransferSpec(TransferKind.STREAM, backend=1, reader=1, verify=True),
        ),
        (
            stream(copy_object_lock=True, copy_tags=True),
            10,
            "k",
            TransferSpec(TransferKind.STREAM, backend=1, whole=True, read_tags=True, verify=True),
        ),
        (
            stream(dest=(OBSTORE, COPIER, BOTOCORE), copy_object_lock=True, copy_tags=True),
            10,
            "k",
            TransferSpec(TransferKind.STREAM, backend=1, alternates=(2,), whole=True, read_tags=True, verify=True),
        ),
        # the write goes to the first that also writes the source's properties (known once read)
        (
            stream(dest=(OBSTORE, COPIER, BOTOCORE)),
            10,
            "k",
            TransferSpec(TransferKind.STREAM, backend=0, alternates=(1, 2), whole=True, verify=True),
        ),
        (
            stream(copy_object_lock=True),
            8 * MIB,
            "k",
            TransferSpec(TransferKind.STREAM, backend=1, verify=True, lock_after=True),
        ),
    ],
)
def test_route(context, size, key, expected):
    assert route(context, size=size, source_key=key, dest_key=key) == expected


def test_a_copy_checks_both_keys():
    """A client that keeps only plain keys carries a copy only when both keys are plain."""
    plain_copier = Capabilities("plain", operations=frozenset({Operation.COPY}), keys=OBSTORE.keys)
    context = copy(dest=(plain_copier, BOTOCORE))
    assert route(context, size=1, source_key="a/k", dest_key="b/k").backend == 0
    assert route(context, size=1, source_key="a//k", dest_key="b/k").backend == 1
    assert route(context, size=1, source_key="a/k", dest_key="b//k").backend == 1


def test_a_side_whose_backends_carry_nothing_is_an_error():
    with pytest.raises(NoCarrierError, match="obstore"):
        route(RouteContext(COPY, dest=(OBSTORE,)), size=1, source_key="k", dest_key="k")
