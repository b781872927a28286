"""A fast parse of the ListObjectsV2 pages of the sync's listings.

botocore's shape-driven XML parser costs about 100 ms of CPU per 1,000-key page, which under
the GIL is most of a no-op re-sync of many objects; ElementTree (C) reads the same page in
8 to 10 ms, and one regular expression over the entries of the usual shape in about 3 ms (pages
of any other shape are ElementTree's; a property test holds the two to the same result).
While :func:`fast_pages` is iterating, a ``before-parse`` handler parses each page's
``Contents`` itself and hands botocore the rest of the page (pagination tokens, prefix,
encoding type), so retries, signing, error handling and pagination stay botocore's.

botocore also parses every 200 answer of S3 whole, first, only to see whether it is an error in
disguise (``_handle_200_error``); :func:`install` puts the fast parse in front of that check for
these pages — a page that parses as a ListBucketResult is no error, a body cut short still is
one (a 500, retried), and every other answer still gets botocore's own check.
"""

from __future__ import annotations

import functools
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from botocore import handlers
from botocore.utils import parse_timestamp

#: The page key under which the handler leaves its entries.
CONTENTS = "S3SyncContents"
#: (key, size, last modified, ETag, storage class) of one listed object.
Listed = tuple[str, int, datetime, str | None, str | None]

_active = threading.local()


def parse_page(body: bytes) -> tuple[list[Listed], bytes] | None:
    """The objects of a ListObjectsV2 answer (keys URL-decoded when the answer says
    ``EncodingType=url``, as botocore does), and the answer without them; ``None`` if ``body``
    is no ListBucketResult."""
    plain = _parse_plain(body)
    return plain if plain is not None else _parse_tree(body)


def _parse_tree(body: bytes) -> tuple[list[Listed], bytes] | None:
    """:func:`parse_page` by ElementTree, for any page."""
    root = ET.fromstring(body)
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    if root.tag != f"{ns}ListBucketResult":
        return None
    url_encoded = root.findtext(f"{ns}EncodingType") == "url"
    key_tag, size_tag, time_tag = f"{ns}Key", f"{ns}Size", f"{ns}LastModified"
    etag_tag, class_tag = f"{ns}ETag", f"{ns}StorageClass"
    listed: list[Listed] = []
    rest = ET.Element(root.tag)
    for child in root:
        if child.tag != f"{ns}Contents":
            rest.append(child)
            continue
        key = child.findtext(key_tag) or ""
        listed.append(
            (
                unquote_plus(key) if url_encoded else key,
                int(child.findtext(size_tag) or 0),
                _timestamp(child.findtext(time_tag) or ""),
                child.findtext(etag_tag),
                child.findtext(class_tag),
            )
        )
    return listed, ET.tostring(rest)


# One <Contents> element as S3 and the servers tested here write it: Key, LastModified and ETag
# first, Size later, StorageClass if any, other elements (ChecksumAlgorithm, Owner, RestoreStatus:
# text or one level of children) anywhere after ETag. Attributes, comments, CDATA, prefixes and
# any other shape do not match, and then the page goes to ElementTree.
def _other(n: int) -> bytes:
    """Any other element, its text or one level of children (named groups ``o<n>``, ``i<n>``)."""
    return (
        rb"(?:<(?!(?:Key|LastModified|ETag|Size|StorageClass)[>\s/])(?P<o%d>[A-Za-z]+)>"
        rb"(?:[^<]*|\s*(?:<(?P<i%d>[A-Za-z]+)>[^<]*</(?P=i%d)>\s*)*)</(?P=o%d)>\s*)" % (n, n, n, n)
    )


_ENTRY = re.compile(
    rb"<Contents>\s*<Key>(?P<key>[^<]*)</Key>\s*<LastModified>(?P<modified>[^<]*)</LastModified>\s*"
    rb"<ETag>(?P<etag>[^<]*)</ETag>\s*"
    + _other(1)
    + rb"*<Size>(?P<size>[0-9]+)</Size>\s*"
    + _other(2)
    + rb"*?(?:<StorageClass>(?P<class>[^<]*)</StorageClass>\s*)?"
    + _other(3)
    + rb"*</Contents>"
)
_QUOTE = re.compile(rb"&(?:quot|#34|#x22);")


def _parse_plain(body: bytes) -> tuple[list[Listed], bytes] | None:
    """:func:`parse_page` by one regular expression, for pages of the usual shape: about 3 ms
    per 1,000 keys where ElementTree takes 8 to 10 (and holds the GIL either way); ``None``
    (ElementTree's turn) for a page it cannot read with certainty: any entry not of that
    shape, an entity or a carriage return where ElementTree would rewrite the text, a body
    that does not end the document."""
    if b"<ListBucketResult" not in body[:512] or not body[-512:].rstrip().endswith(b"</ListBucketResult>"):
        return None
    url_encoded = b"<EncodingType>url</EncodingType>" in body
    rewritten = b"&" in body or b"\r" in body  # then each entry is checked (an S3 ETag: &quot;)
    listed: list[Listed] = []
    rest: list[bytes] = []
    end = 0
    for match in _ENTRY.finditer(body):
        rest.append(body[end : match.start()])
        end = match.end()
        raw_key, modified, etag, size, storage_class = match.group("key", "modified", "etag", "size", "class")
        if rewritten:
            etag = _QUOTE.sub(b'"', etag)
            if b"&" in b"".join((raw_key, modified, etag, storage_class or b"")) or b"\r" in raw_key:
                return None
        key = raw_key.decode()
        if url_encoded and ("%" in key or "+" in key):
            key = unquote_plus(key)
        listed.append(
            (
                key,
                int(size),
                _timestamp(modified.decode()),
                etag.decode(),
                None if storage_class is None else storage_class.decode(),
            )
        )
    if len(listed) != body.count(b"<Contents") or b":Contents" in body:
        return None  # an entry of another shape
    rest.append(body[end:])
    return listed, b"".join(rest)


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return parse_timestamp(text)
    return value if value.tzinfo is not None else parse_timestamp(text)


def before_parse(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **kwargs: Any) -> bool:
    """The fast parse of a ListObjectsV2 answer, active only inside :func:`fast_pages`; whether
    it took the page (then it is no error in disguise)."""
    if not getattr(_active, "on", False) or response_dict.get("status_code") != 200:
        return False
    body = response_dict.get("body")
    if not isinstance(body, bytes):
        return False
    try:
        parsed = parse_page(body)
    except (ET.ParseError, ValueError):
        return False  # botocore's checks and parser say what is wrong
    if parsed is None:
        return False
    customized_response_dict[CONTENTS], response_dict["body"] = parsed
    return True


def _before_parse_s3(check_200_error: Any, operation_model: Any, response_dict: dict[str, Any], **kwargs: Any) -> None:
    if operation_model.name == "ListObjectsV2" and before_parse(response_dict, **kwargs):
        return
    check_200_error(operation_model=operation_model, response_dict=response_dict, **kwargs)


def install(events: Any) -> None:
    """Register the fast parse on a client's event emitter (see the module's docstring)."""
    check_200_error = getattr(handlers, "_handle_200_error", None)
    if check_200_error is None:  # another botocore: the fast parse after its own check
        events.register("before-parse.s3.ListObjectsV2", before_parse)
        return
    events.unregister("before-parse.s3.*", check_200_error)
    events.register_first("before-parse.s3.*", functools.partial(_before_parse_s3, check_200_error))


def fast_pages(pages: Iterable[Mapping[str, Any]]) -> Iterator[list[Listed]]:
    """The objects of each page of a ListObjectsV2 paginator whose client has
    :func:`before_parse` registered (pages it left alone are read from botocore's parse)."""
    iterator = iter(pages)
    while True:
        _active.on = True
        try:
            page = next(iterator, None)
        finally:
            _active.on = False
        if page is None:
            return
        yield _listed(page)


def fast_page(request: Callable[[], Mapping[str, Any]]) -> tuple[list[Listed], Mapping[str, Any]]:
    """The objects of the one ListObjectsV2 answer ``request`` returns (parsed as
    :func:`fast_pages` parses pages), and the answer (``IsTruncated``, ...)."""
    _active.on = True
    try:
        page = request()
    finally:
        _active.on = False
    return _listed(page), page


def _listed(page: Mapping[str, Any]) -> list[Listed]:
    listed = page.get(CONTENTS)
    if listed is None:
        listed = [
            (obj["Key"], obj["Size"], obj["LastModified"], obj.get("ETag"), obj.get("StorageClass"))
            for obj in page.get("Contents", ())
        ]
    return listed
