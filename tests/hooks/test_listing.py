"""The fast ListObjectsV2 parse gives what botocore's parser gives."""

from __future__ import annotations

import functools
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


# The regular-expression parse (pages of the usual shape) against ElementTree's, over random pages.
ODD_KEYS = ["a", "a b", "a+b", "a%2Fb", "ä/ö ü", "日本/語", "x&y", "<t>", 'q"q', "a\tb", "sp  ace ", "z" * 300]
OTHERS = [
    "<ChecksumAlgorithm>CRC32</ChecksumAlgorithm>",
    "<ChecksumType>FULL_OBJECT</ChecksumType>",
    "<Owner><ID>abc</ID><DisplayName>me</DisplayName></Owner>",
    "<Owner>\n  <ID>abc</ID>\n</Owner>",
    "<RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress></RestoreStatus>",
]
#: Entries the regular expression must leave to ElementTree (read by it all the same).
ODD_ENTRIES = [
    '<Contents><Key xml:space="preserve">{key}</Key><LastModified>{time}</LastModified><ETag>e</ETag>'
    "<Size>1</Size></Contents>",
    "<Contents><Key><![CDATA[{raw}]]></Key><LastModified>{time}</LastModified><ETag>e</ETag><Size>1</Size></Contents>",
    "<Contents><!-- c --><Key>{key}</Key><LastModified>{time}</LastModified><ETag>e</ETag><Size>1</Size></Contents>",
    "<Contents><Size>1</Size><Key>{key}</Key><LastModified>{time}</LastModified><ETag>e</ETag></Contents>",
    "<Contents><Key>{key}</Key><LastModified>{time}</LastModified><ETag>e</ETag><Size>1</Size><StorageClass/></Contents>",
    "<Contents><Key>{key}&#x41;</Key><LastModified>{time}</LastModified><ETag>e</ETag><Size>1</Size></Contents>",
]


def random_page(rng, *, odd: bool) -> bytes:
    url = rng.random() < 0.7
    pretty = "\n    " if rng.random() < 0.5 else ""
    entries = []
    for n in range(rng.randrange(0, 40)):
        raw = rng.choice(ODD_KEYS) + str(n)
        key = escape(quote_plus(raw, safe="/") if url else raw, {'"': rng.choice(['"', "&quot;"])})
        time = f"2026-11-{rng.randrange(1, 29):02d}T02:55:{n % 60:02d}.{n:03d}Z"
        quote = rng.choice(['"', "&quot;", "&#34;", "&#x22;", ""])
        fields = [f"<Key>{key}</Key>", f"<LastModified>{time}</LastModified>", f"<ETag>{quote}{n:032x}{quote}</ETag>"]
        fields += rng.sample(OTHERS, rng.randrange(0, 3))
        fields.append(f"<Size>{n * 1000}</Size>")
        tail = rng.sample(OTHERS, rng.randrange(0, 2))
        if rng.random() < 0.7:
            tail.insert(
                rng.randrange(0, len(tail) + 1), f"<StorageClass>{rng.choice(['STANDARD', 'GLACIER'])}</StorageClass>"
            )
        entries.append(pretty.join(["<Contents>", *fields, *tail]) + pretty + "</Contents>")
    if odd:
        odd_entry = rng.choice(ODD_ENTRIES).format(key="odd", raw="o&d", time="2026-11-01T00:00:00.000Z")
        entries.insert(rng.randrange(0, len(entries) + 1), odd_entry)
    prefixes = "".join(f"<CommonPrefixes><Prefix>p{n}/</Prefix></CommonPrefixes>" for n in range(rng.randrange(0, 3)))
    head = "<Name>b</Name><Prefix>data/</Prefix><MaxKeys>1000</MaxKeys>" + (
        "<EncodingType>url</EncodingType>" if url else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        + pretty
        + pretty.join(
            [
                head,
                "<IsTruncated>true</IsTruncated>",
                *entries,
                prefixes,
                "<NextContinuationToken>t</NextContinuationToken>",
            ]
        )
        + "</ListBucketResult>\n"
    ).encode()


@functools.cache
def list_objects_shape():
    return botocore.session.get_session().get_service_model("s3").operation_model("ListObjectsV2").output_shape


@pytest.mark.parametrize("seed", range(300))
def test_the_regular_expression_reads_pages_as_elementtree_does(seed):
    import random
    import re

    from airflow_s3sync.hooks.listing import _parse_plain, _parse_tree

    rng = random.Random(seed)
    odd = seed % 3 == 0
    body = random_page(rng, odd=odd)
    tree = _parse_tree(body)
    assert tree is not None
    plain = _parse_plain(body)
    if odd or re.search(rb"<Key>[^<]*&", body):
        # An entry of another shape, or a key ElementTree unescapes: the page is ElementTree's.
        assert plain is None
        assert parse_page(body) == tree
        return
    assert plain is not None  # the usual shapes are the fast path's (ETags in &quot; too)
    assert plain[0] == tree[0]
    assert parse_page(body) == plain
    shape = list_objects_shape()
    left = {
        rest: RestXMLParser().parse({"body": rest, "headers": {}, "status_code": 200}, shape)
        for rest in (plain[1], tree[1])
    }
    assert left[plain[1]] == left[tree[1]]
    assert "Contents" not in left[plain[1]] and left[plain[1]]["NextContinuationToken"] == "t"
