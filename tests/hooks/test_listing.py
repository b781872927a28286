"""The fast ListObjectsV2 parse gives what botocore's parser gives."""

from __future__ import annotations

from urllib.parse import quote_plus, unquote_plus
from xml.sax.saxutils import escape

import botocore.session
import pytest
from botocore.parsers import RestXMLParser

from airflow_s3sync.hooks.listing import parse_page

KEYS = ["a.txt", "sp ace.txt", "plus+.txt", "pct%20.txt", "ünï/çødé.txt", "ctl\x01.txt", "amp&<.txt", "dir/"]


def page(*, url: bool) -> bytes:
    contents = "".join(
        "<Contents>"
        f"<Key>{escape(quote_plus(key, safe='/') if url else key)}</Key>"
        f"<LastModified>2026-11-24T02:55:{n:02d}.{n:03d}Z</LastModified>"
        f"<ETag>&quot;{n:032x}&quot;</ETag><Size>{n}</Size>"
        + ("<StorageClass>GLACIER</StorageClass>" if n % 2 else "")
        + "</Contents>"
        for n, key in enumerate(KEYS if url else [key for key in KEYS if key.isprintable()])
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix>'
        f"<KeyCount>{len(KEYS)}</KeyCount><MaxKeys>1000</MaxKeys>"
        + ("<EncodingType>url</EncodingType>" if url else "")
        + f"<IsTruncated>true</IsTruncated><NextContinuationToken>tok+en</NextContinuationToken>{contents}"
        "</ListBucketResult>"
    ).encode()


@pytest.mark.parametrize("url", [True, False], ids=["url-encoded", "plain"])
def test_the_fast_parse_matches_botocores(url):
    body = page(url=url)
    shape = botocore.session.get_session().get_service_model("s3").operation_model("ListObjectsV2").output_shape
    expected = RestXMLParser().parse({"body": body, "headers": {}, "status_code": 200}, shape)

    parsed = parse_page(body)

    assert parsed is not None
    listed, rest = parsed
    # botocore's parser leaves keys encoded; its after-call handler decodes them with unquote_plus.
    want = [
        (
            unquote_plus(obj["Key"]) if url else obj["Key"],
            obj["Size"],
            obj["LastModified"],
            obj["ETag"],
            obj.get("StorageClass"),
        )
        for obj in expected["Contents"]
    ]
    assert listed == want
    assert [item[0] for item in listed] == (KEYS if url else [key for key in KEYS if key.isprintable()])
    # What is left for botocore: the pagination fields, no objects.
    remaining = RestXMLParser().parse({"body": rest, "headers": {}, "status_code": 200}, shape)
    assert remaining["IsTruncated"] is True and remaining["NextContinuationToken"] == "tok+en"
    assert "Contents" not in remaining


def test_anything_else_is_left_to_botocore():
    assert parse_page(b"<Error><Code>AccessDenied</Code></Error>") is None


@pytest.mark.parametrize(
    ("operation", "body", "status"),
    [
        ("ListObjectsV2", page(url=True), 200),
        ("ListObjectsV2", b"<Error><Code>InternalError</Code></Error>", 500),  # an error in a 200
        ("ListObjectsV2", page(url=True)[:700], 500),  # a body cut short: retried
        ("CopyObject", b"<Error><Code>InternalError</Code></Error>", 500),  # other operations: botocore's check
        ("CopyObject", b"<CopyObjectResult><ETag>x</ETag></CopyObjectResult>", 200),
    ],
    ids=["page", "error", "cut", "copy-error", "copy"],
)
def test_the_fast_parse_keeps_botocores_check_for_errors_in_200_answers(operation, body, status):
    from botocore import handlers

    from airflow_s3sync.hooks import listing

    model = botocore.session.get_session().get_service_model("s3").operation_model(operation)
    response = {"status_code": 200, "body": body, "headers": {}}
    customized: dict = {}
    listing._active.on = True
    try:
        listing._before_parse_s3(
            handlers._handle_200_error,
            operation_model=model,
            response_dict=response,
            customized_response_dict=customized,
        )
    finally:
        listing._active.on = False
    assert response["status_code"] == status
    assert (listing.CONTENTS in customized) == (operation == "ListObjectsV2" and status == 200)
