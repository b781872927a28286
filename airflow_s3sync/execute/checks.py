"""Content checks (``checksum=True``): the I/O of the compare ladder, run by checker workers
apart from the transfer slots, as rclone's checkers are.

What the rungs mean is decided in :mod:`airflow_s3sync.plan` (:func:`~airflow_s3sync.plan.checksum.compare_digests`,
:func:`~airflow_s3sync.plan.checksum.wants_part_size`, :func:`~airflow_s3sync.plan.compare.decide_content`);
this module only reads what they ask for: a HeadObject of an S3 side (of part 1 when only a
multipart ETag can tell), the hash of a local file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_s3sync.execute.sides import Side
from airflow_s3sync.hooks.digest import COMPUTABLE_CHECKSUMS
from airflow_s3sync.plan import Entry
from airflow_s3sync.plan.checksum import Verdict, compare_digests, wants_part_size, wants_part_sizes

_NOTHING_TO_COMPUTE = "the object has neither an MD5 ETag nor a checksum this machine can compute"


@dataclass
class ContentChecker:
    """Compares the contents of same-size pairs of one run.

    :param source: the source side.
    :param dest: the destination side.
    :param dest_read_args: what reading the destination's objects needs (SSE-C keys).
    """

    source: Side
    dest: Side
    dest_read_args: Mapping[str, Any] = field(default_factory=dict)

    def compare(self, src: Entry, dst: Entry) -> tuple[Verdict, str]:
        """The verdict on ``src`` against ``dst``, and why. An S3 side is read first; a local
        side is then hashed for what the object offers."""
        sides = [(self.source, src.key, None), (self.dest, dst.key, self.dest_read_args)]
        if not self.source.reads_digests:
            sides.reverse()
        (first, first_key, first_args), (second, second_key, second_args) = sides
        a = first.content_digests(first_key, read_args=first_args)
        assert a is not None  # an S3 side always answers
        if not second.reads_digests:
            if wants_part_size(a, computable=COMPUTABLE_CHECKSUMS):
                a = first.with_part_size(first_key, a)
            b = second.content_digests(second_key, other=a)
            return (Verdict.UNKNOWN, _NOTHING_TO_COMPUTE) if b is None else compare_digests(b, a)
        b = second.content_digests(second_key, other=a, read_args=second_args)
        assert b is not None
        verdict = compare_digests(a, b)
        if wants_part_sizes(verdict[0], a, b):
            verdict = compare_digests(first.with_part_size(first_key, a), second.with_part_size(second_key, b))
        return verdict
