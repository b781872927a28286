"""A fast parse of the ListObjectsV2 pages of the sync's listings.

botocore's shape-driven XML parser costs about 100 ms of CPU per 1,000-key page, which under
the GIL is most of a no-op re-sync of many objects; ElementTree (C) reads the same page in
about 6 ms. While :func:`fast_pages` is iterating, a ``before-parse`` handler parses each page's
``Contents`` itself and hands botocore the rest of the page (pagination tokens, prefix,
encoding type), so retries, signing, error handling and pagination stay botocore's.

botocore also parses every 200 answer of S3 whole, first, only to see whether it is an error in
disguise (``_handle_200_error``); :func:`install` puts the fast parse in front of that check for
these pages — a page that parses as a ListBucketResult is no error, a body cut short still is
one (a 500, retried), and every other answer still gets botocore's own check.
"""

from __future__ import annotations

import functools
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
