"""Whether an S3 destination keeps odd keys as they are, found out once per kind and run.

Servers that store objects as files rewrite some keys (``a//b`` as ``a/b``, ``/lead`` as
``lead``) and refuse others (``./x``). Writing such a key there would store it under another
key's name, which the sync's deletes (the key is not in the source) would then remove — every
run writing it again and deleting it again. Before the first key of a kind is written, a probe
object with such a key is written under the destination prefix, read back by its exact key and
removed (with whatever the server made of it); keys of a kind the destination does not keep are
skipped with a warning, as downloads skip keys a local directory cannot hold.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from airflow_s3sync.errors import S3RequestError
from airflow_s3sync.hooks.backend import ObjectRef, answer_of
from airflow_s3sync.plan.capabilities import rewrite_kind

if TYPE_CHECKING:
    from airflow_s3sync.execute.sides import S3Side

_PROBE_BODY = b"s3sync probe"
#: A probe key of each kind, from the destination prefix and a unique name.
_SAMPLES = {
    "a leading '/'": "/{prefix}{name}",
    "'//'": "{prefix}{name}//x",
    "a '.' or '..' segment": "{prefix}{name}/./x",
}


class KeyProbe:
    """Tells which odd keys (:func:`~airflow_s3sync.plan.capabilities.rewrite_kind`) the
    destination ``dest`` keeps; ``active=False`` (a server known to keep every key, as S3 does,
    or a dry run) trusts it with all of them."""

    def __init__(self, dest: S3Side | None, *, log: logging.Logger, active: bool) -> None:
        self.dest = dest
        self.log = log
        self.active = active and dest is not None
        self._kept: dict[str, bool] = {}
        self._lock = threading.Lock()

    def refusal(self, key: str) -> str | None:
        """Why the compare key ``key`` must not be written to the destination, or ``None``."""
        if not self.active or self.dest is None:
            return None
        object_key = self.dest.route_key(key)
        kind = rewrite_kind(object_key)
        if kind is None:
            return None
        with self._lock:  # one probe per kind; the other writers wait for its answer
            kept = self._kept.get(kind)
            if kept is None:
                kept = self._kept[kind] = self._probe(kind)
        if kept:
            return None
        return (
            f"The destination does not keep keys with {kind} as they are (it stored a probe under another "
            "name, or refused it), so it would be written under another key's name."
        )

    def _probe(self, kind: str) -> bool:
        assert self.dest is not None
        dest, name = self.dest, f".s3sync-probe-{uuid.uuid4().hex[:16]}"
        prefix = dest.location.prefix
        ref = ObjectRef(dest.bucket, _SAMPLES[kind].format(prefix=prefix, name=name))
        backend = dest.backend
        try:
            backend.write_object(dest=ref, data=_PROBE_BODY, extra_args={}, progress=lambda count: None)
        except (ClientError, S3RequestError) as error:
            if _status(error) not in (400, 403, 404, 405, 501):
                raise
            kept = False  # refused: such keys cannot be written there
        else:
            try:
                kept = backend.head_object(ref=ref).size == len(_PROBE_BODY)
            except (ClientError, S3RequestError) as error:
                if _status(error) != 404:
                    raise
                kept = False
        self.log.info(
            "probe of keys with %s: s3://%s/%s %s", kind, ref.bucket, ref.key, "kept as written" if kept else "not kept"
        )
        self._clean(ref, (prefix if kind != "a leading '/'" else "/" + prefix) + name, kept)
        return kept

    def _clean(self, ref: ObjectRef, start: str, kept: bool) -> None:
        """Remove the probe and whatever the server made of it (keys starting with ``start``,
        and ``start`` with its leading '/' gone); a probe left behind is a warning only."""
        assert self.dest is not None
        backend, bucket = self.dest.backend, self.dest.bucket
        keys = {ref.key} if kept else set()
        for prefix in {start, start.lstrip("/")}:
            keys.update(prefix + entry.key for entry in backend.list_entries(bucket=bucket, prefix=prefix))
        for key, error in backend.delete_keys(bucket=bucket, keys=sorted(keys)):
            if error is not None:
                self.log.warning("warning: the probe s3://%s/%s could not be removed: %s", bucket, key, error)


def _status(error: ClientError | S3RequestError) -> int:
    answer = answer_of(error)
    return 0 if answer is None else answer[0]
