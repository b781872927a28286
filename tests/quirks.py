"""A loopback proxy that makes a real S3 server behave like S3-compatible servers that are not quite S3.

``QuirksProxy(server, path_order=True, ...)`` is a :class:`tests.faults.FaultProxy` that injects no
fault: it relays requests and answers byte for byte (they are SigV4-signed) between its clients and
a real server (moto's, or ``rclone serve s3``), except where one of the quirks asked for changes
what the server seems to do. To read or change what the server stores, the proxy has its own boto3
client straight to it (it knows the credentials). The quirks:

- ``path_order``: a ListObjectsV2 is answered by the proxy, from a full listing of the prefix,
  with the keys ordered by path segments (``a/b`` before ``a-b`` and ``a.txt``; S3 orders by UTF-8
  bytes: ``a-b``, ``a.txt``, ``a/b``), ``start-after`` and continuation tokens meaning that order.
  ``delimiter`` is refused (501 ``NotImplemented``).
- ``rewrite_keys``: after a successful write (PutObject, CopyObject, CompleteMultipartUpload) to a
  key with ``//`` in it or a leading ``/``, the object is moved to the key with ``//`` collapsed and
  the leading ``/`` removed (copied, metadata kept, then deleted); the client gets the server's
  answer to its write. A write to a key with a ``.`` or ``..`` segment (or one that would be
  rewritten to nothing) is refused with 400 ``InvalidArgument``.
- ``empty_dir_bodies``: after a successful PutObject of a non-empty body to a key ending in ``/``,
  the object is replaced with 0 bytes; the client gets the server's answer (the ETag of its bytes).
- ``foreign_copy_etags``: an object completed by a CompleteMultipartUpload whose upload had an
  UploadPartCopy gets the ETag ``"<md5 hex of the upload id>-<number of parts>"`` in every later
  answer about it (the CompleteMultipartUpload's, HeadObject's and GetObject's ``ETag`` header,
  ListObjects pages) until a PutObject, CopyObject or another CompleteMultipartUpload replaces it.
  The server does not know that ETag: a conditional request carrying it (``If-Match``,
  ``x-amz-copy-source-if-match``) gets the server's answer to a mismatch.
- ``refuse_sse``: a PutObject, CopyObject or CreateMultipartUpload with an
  ``x-amz-server-side-encryption`` header is answered 500 ``InternalError`` (no server-side
  encryption configured), and the server never sees it.

What the quirks did is counted: ``rewritten`` (``(from, to)`` key pairs moved), ``refused_keys``,
``emptied``, ``listed_pages`` (the keys of each page the proxy answered), ``refused_sse`` and
``foreign_etags`` (``{(bucket, key): ETag}``); ``operations()`` and ``headers_of()`` of FaultProxy
tell which requests reached the proxy.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import html
import http
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote, unquote_plus
from xml.sax.saxutils import escape

from botocore.exceptions import ClientError

from tests.faults import FaultProxy, _Message, _status, operation_of, with_body
from tests.support import S3Server

_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
#: The writes that create or replace an object under their key.
_OBJECT_WRITES = ("PutObject", "CopyObject", "CompleteMultipartUpload")
#: Every request that writes to its key (a refused key is refused to all of them).
_KEY_WRITES = (*_OBJECT_WRITES, "CreateMultipartUpload", "UploadPart", "UploadPartCopy")
_SSE_WRITES = ("PutObject", "CopyObject", "CreateMultipartUpload")
_CONTENTS = re.compile(rb"<Contents>(.*?)</Contents>", re.S)
_KEY = re.compile(rb"<Key>(.*?)</Key>", re.S)
_ETAG = re.compile(rb"<ETag>.*?</ETag>", re.S)


@dataclass(frozen=True)
class _Request:
    """What the quirks need of one path-style request."""

    method: str
    operation: str
    bucket: str
    key: str
    params: dict[str, str]
    message: _Message

    @classmethod
    def parse(cls, message: _Message) -> _Request:
        method, target = (part.decode("latin-1") for part in message.start.split(b" ")[:2])
        path, _, query = target.partition("?")
        bucket, _, raw_key = path.removeprefix("/").partition("/")
        params = {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}
        # operation_of does not see a key of slashes alone ("/bucket//"): it is given a plain one
        shape = f"/{bucket}{'/k' if raw_key else ''}{'?' if query else ''}{query}"
        operation = operation_of(method, shape, copy_source=message.get("x-amz-copy-source"))
        return cls(method, operation, unquote(bucket), unquote(raw_key), params, message)


@dataclass
class _Upload:
    """The parts of one multipart upload seen so far."""

    parts: set[int] = field(default_factory=set)
    copied: bool = False


def rewritten_key(key: str) -> str:
    """``key`` as a ``rewrite_keys`` server stores it: ``//`` collapsed to ``/``, no leading ``/``."""
    return re.sub("/{2,}", "/", key).lstrip("/")


def path_order(key: str) -> list[str]:
    """The sort key of the ``path_order`` listings: the key's path segments."""
    return key.split("/")


def _xml(text: str) -> str:
    return escape(text, {'"': "&quot;"})


def _answer(status: int, body: bytes, *, head_only: bool, content_type: str = "application/xml") -> bytes:
    reason = http.HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"x-amz-request-id: QUIRKS{uuid.uuid4().hex[:16].upper()}\r\n"
        "\r\n"
    ).encode()
    return head if head_only else head + body


def _error(status: int, code: str, message: str, request: _Request) -> bytes:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{_xml(code)}</Code><Message>{_xml(message)}</Message>"
        f"<Resource>{_xml('/' + request.bucket + ('/' + request.key if request.key else ''))}</Resource>"
        "<RequestId>QUIRKS</RequestId></Error>"
    ).encode()
    return _answer(status, body, head_only=request.method == "HEAD")


def _with_header(response: _Message, name: str, value: str) -> _Message:
    """``response`` with the value of its header ``name`` (lower case) replaced."""
    lines = [
        line.partition(b":")[0] + b": " + value.encode("latin-1") if header == name else line
        for line, (header, _) in zip(response.lines, response.headers, strict=True)
    ]
    return _Message(response.start, lines)


def _timestamp(when: datetime) -> str:
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class QuirksProxy(FaultProxy):
    """A proxy in front of ``server`` that adds the quirks asked for (see the module's docstring);
    a context manager, like FaultProxy."""

    def __init__(
        self,
        server: S3Server,
        *,
        path_order: bool = False,
        rewrite_keys: bool = False,
        empty_dir_bodies: bool = False,
        foreign_copy_etags: bool = False,
        refuse_sse: bool = False,
    ) -> None:
        super().__init__(server.endpoint_url, rate=0.0, seed=0)
        #: The server behind the proxy.
        self.upstream_server = server
        self.path_order = path_order
        self.rewrite_keys = rewrite_keys
        self.empty_dir_bodies = empty_dir_bodies
        self.foreign_copy_etags = foreign_copy_etags
        self.refuse_sse = refuse_sse
        #: ``(from, to)`` of each object moved to its rewritten key.
        self.rewritten: list[tuple[str, str]] = []
        #: The keys of the writes refused for a ``.`` or ``..`` segment (one per refused request).
        self.refused_keys: list[str] = []
        #: The keys whose non-empty body was replaced with 0 bytes.
        self.emptied: list[str] = []
        #: The keys of each ListObjectsV2 page the proxy answered itself, in order.
        self.listed_pages: list[list[str]] = []
        #: How many writes were refused for their server-side encryption header.
        self.refused_sse = 0
        #: ``{(bucket, key): ETag}`` of the objects whose answers carry a foreign ETag.
        self.foreign_etags: dict[tuple[str, str], str] = {}
        self._uploads: dict[str, _Upload] = {}
        self._quirks_lock = threading.Lock()
        self._client: Any = server.client(
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
            response_checksum_validation="when_required",
        )

    @property
    def server(self) -> S3Server:
        """The upstream server's credentials with the proxy's endpoint: ``.server.client()`` goes
        through the proxy."""
        return dataclasses.replace(self.upstream_server, endpoint_url=self.endpoint_url)

    def start(self) -> QuirksProxy:
        super().start()
        return self

    def __enter__(self) -> QuirksProxy:
        return self.start()

    def __repr__(self) -> str:
        quirks = [
            name
            for name in ("path_order", "rewrite_keys", "empty_dir_bodies", "foreign_copy_etags", "refuse_sse")
            if getattr(self, name)
        ]
        return f"QuirksProxy({self.upstream_server.name}, {', '.join(quirks) or 'no quirks'})"

    # FaultProxy's extension points

    def intercept(self, request: _Message) -> bytes | None:
        """The proxy's own answer to a refused write or a path-ordered listing."""
        req = _Request.parse(request)
        if self.refuse_sse and req.operation in _SSE_WRITES and request.get("x-amz-server-side-encryption"):
            with self._quirks_lock:
                self.refused_sse += 1
            return _error(
                500,
                "InternalError",
                "Server-side encryption was requested, but no server-side encryption configuration "
                "(KMS) is set up on this server.",
                req,
            )
        if self.rewrite_keys and req.operation in _KEY_WRITES:
            segments = req.key.split("/")
            if "." in segments or ".." in segments or not rewritten_key(req.key):
                with self._quirks_lock:
                    self.refused_keys.append(req.key)
                reason = "a '.' or '..' segment" if rewritten_key(req.key) else "nothing left once normalised"
                return _error(400, "InvalidArgument", f"Invalid object name {req.key!r}: {reason}", req)
        if self.path_order and req.operation == "ListObjectsV2":
            return self._list_page(req)
        if self.foreign_copy_etags and req.operation in ("UploadPart", "UploadPartCopy"):
            self._note_part(req)
        return None

    def edit_mode(self, request: _Message) -> str | None:
        """``"whole"`` for the writes whose success a quirk acts on and the listings whose ETags it
        changes, ``"head"`` for the reads of an object with a foreign ETag."""
        req = _Request.parse(request)
        if req.operation in _OBJECT_WRITES and (
            (self.rewrite_keys and rewritten_key(req.key) != req.key)
            or (self.empty_dir_bodies and req.operation == "PutObject" and req.key.endswith("/"))
            or self.foreign_copy_etags
        ):
            return "whole"
        with self._quirks_lock:
            foreign = self.foreign_etags.get((req.bucket, req.key))
            in_bucket = any(bucket == req.bucket for bucket, _ in self.foreign_etags)
        if req.operation in ("HeadObject", "GetObject") and foreign:
            return "head"
        if req.operation in ("ListObjectsV2", "ListObjects") and in_bucket:
            return "whole"
        return None

    def edit_response(self, request: _Message, response: _Message, body: bytes | None) -> bytes:
        """Act on a successful write, then give its answer (a foreign ETag in it); put the foreign
        ETags into the other answers."""
        req = _Request.parse(request)
        status = _status(response)
        if body is None:  # a HeadObject or GetObject
            with self._quirks_lock:
                foreign = self.foreign_etags.get((req.bucket, req.key))
            if foreign and 200 <= status < 300 and response.get("etag") is not None:
                response = _with_header(response, "etag", foreign)
            return response.raw()
        if req.operation in ("ListObjectsV2", "ListObjects"):
            return with_body(response, self._foreign_in_listing(req.bucket, body) if status == 200 else body)
        if not (200 <= status < 300 and b"<Error>" not in body):
            return with_body(response, body)
        key = req.key
        try:
            if self.empty_dir_bodies and req.operation == "PutObject" and key.endswith("/"):
                self._empty(req.bucket, key)
            if self.foreign_copy_etags:
                body = self._foreign_after_write(req, body)
            if self.rewrite_keys and rewritten_key(key) != key:
                self._move(req.bucket, key, rewritten_key(key))
        except ClientError as error:  # the write happened, its quirk did not: say so, the client may retry
            return _error(500, "InternalError", f"quirks proxy: {error}", req)
        return with_body(response, body)

    # the quirks

    def _list_page(self, req: _Request) -> bytes:
        """A ListObjectsV2 page in path order."""
        params = req.params
        if params.get("delimiter"):
            return _error(501, "NotImplemented", "This server does not list with a delimiter.", req)
        encoding = params.get("encoding-type")
        if encoding not in (None, "url"):
            return _error(400, "InvalidArgument", f"Invalid Encoding Method specified in Request: {encoding}", req)
        try:
            max_keys = min(int(params.get("max-keys", "1000")), 1000)
        except ValueError:
            max_keys = -1
        if max_keys < 0:
            return _error(400, "InvalidArgument", "Provided max-keys not an integer or within integer range", req)
        token = params.get("continuation-token")
        start_after = params.get("start-after")
        after = start_after or None
        if token is not None:
            try:
                after = base64.urlsafe_b64decode(token.encode("ascii")).decode()
            except (binascii.Error, UnicodeError, ValueError):
                after = None
            if not token or after is None:
                return _error(400, "InvalidArgument", "The continuation token provided is incorrect", req)
        prefix = params.get("prefix", "")
        try:
            objects = [
                item
                for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=req.bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        except ClientError as error:
            return self._client_error(error, req)
        objects.sort(key=lambda item: path_order(item["Key"]))
        if after is not None:
            objects = [item for item in objects if path_order(item["Key"]) > path_order(after)]
        page = objects[:max_keys]
        truncated = max_keys > 0 and len(objects) > len(page)
        with self._quirks_lock:
            self.listed_pages.append([item["Key"] for item in page])
            foreign = dict(self.foreign_etags)

        def encoded(text: str) -> str:
            return _xml(quote(text, safe="/~") if encoding == "url" else text)

        parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{_NS}">']
        parts.append(f"<Name>{_xml(req.bucket)}</Name><Prefix>{encoded(prefix)}</Prefix>")
        if token is not None:
            parts.append(f"<ContinuationToken>{_xml(token)}</ContinuationToken>")
        if start_after is not None:
            parts.append(f"<StartAfter>{encoded(start_after)}</StartAfter>")
        parts.append(f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>")
        if encoding == "url":
            parts.append("<EncodingType>url</EncodingType>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if truncated:
            next_token = base64.urlsafe_b64encode(page[-1]["Key"].encode()).decode("ascii")
            parts.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
        for item in page:
            etag = foreign.get((req.bucket, item["Key"]), item.get("ETag", ""))
            parts.append(
                f"<Contents><Key>{encoded(item['Key'])}</Key>"
                f"<LastModified>{_timestamp(item['LastModified'])}</LastModified>"
                f"<ETag>{_xml(etag)}</ETag><Size>{item['Size']}</Size>"
                f"<StorageClass>{_xml(item.get('StorageClass') or 'STANDARD')}</StorageClass></Contents>"
            )
        parts.append("</ListBucketResult>")
        return _answer(200, "".join(parts).encode(), head_only=False)

    def _client_error(self, error: ClientError, req: _Request) -> bytes:
        """The answer the upstream gave the proxy's own client, given to the proxy's client."""
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
        return _error(status, details.get("Code", "InternalError"), details.get("Message", str(error)), req)

    def _note_part(self, req: _Request) -> None:
        upload_id, number = req.params.get("uploadId"), req.params.get("partNumber", "")
        if not upload_id or not number.isdigit():
            return
        with self._quirks_lock:
            upload = self._uploads.setdefault(upload_id, _Upload())
            upload.parts.add(int(number))
            upload.copied = upload.copied or req.operation == "UploadPartCopy"

    def _foreign_after_write(self, req: _Request, body: bytes) -> bytes:
        """Remember or forget the foreign ETag of a written key; the write's answer with it."""
        target = (req.bucket, req.key)
        with self._quirks_lock:
            self.foreign_etags.pop(target, None)
            upload = self._uploads.pop(req.params.get("uploadId", ""), None)
            if req.operation != "CompleteMultipartUpload" or upload is None or not upload.copied:
                return body
            digest = hashlib.md5(req.params["uploadId"].encode(), usedforsecurity=False).hexdigest()
            etag = f'"{digest}-{len(upload.parts)}"'
            self.foreign_etags[target] = etag
        return _ETAG.sub(b"<ETag>" + _xml(etag).encode() + b"</ETag>", body, count=1)

    def _foreign_in_listing(self, bucket: str, body: bytes) -> bytes:
        """A ListObjects page of the upstream with the foreign ETags in it."""
        url_encoded = b"<EncodingType>url</EncodingType>" in body
        with self._quirks_lock:
            foreign = dict(self.foreign_etags)

        def one(match: re.Match[bytes]) -> bytes:
            key_match = _KEY.search(match.group(1))
            if key_match is None:
                return match.group(0)
            key = html.unescape(key_match.group(1).decode())
            etag = foreign.get((bucket, unquote_plus(key) if url_encoded else key))
            if etag is None:
                return match.group(0)
            return _ETAG.sub(b"<ETag>" + _xml(etag).encode() + b"</ETag>", match.group(0), count=1)

        return _CONTENTS.sub(one, body)

    def _empty(self, bucket: str, key: str) -> None:
        """Replace the object with 0 bytes, its content type and metadata kept."""
        head = self._client.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] == 0:
            return
        extra = {"ContentType": head["ContentType"]} if head.get("ContentType") else {}
        self._client.put_object(Bucket=bucket, Key=key, Body=b"", Metadata=head.get("Metadata", {}), **extra)
        with self._quirks_lock:
            self.emptied.append(key)

    def _move(self, bucket: str, key: str, new_key: str) -> None:
        """Move the object to ``new_key``: copied with its metadata, then deleted."""
        self._client.copy_object(
            Bucket=bucket, Key=new_key, CopySource={"Bucket": bucket, "Key": key}, MetadataDirective="COPY"
        )
        self._client.delete_object(Bucket=bucket, Key=key)
        with self._quirks_lock:
            self.rewritten.append((key, new_key))
            etag = self.foreign_etags.pop((bucket, key), None)
            if etag is not None:
                self.foreign_etags[(bucket, new_key)] = etag
