"""Filter rules of sync-semantics.md section 3."""

import pytest

from airflow_s3sync.plan import FilterKind, FilterRule, PathFilter, build_rules

ROOT = "/home/u/dir"
FILES = ["a.txt", "b.jpg", "c.txt", "sub/c.txt", "sub/d.jpg", "logs/x.log", "A.JPG"]


def kept(rules, files=FILES, src_root=ROOT, dst_root="bucket/pre/"):
    f = PathFilter(build_rules(filters=rules), src_root=src_root, dst_root=dst_root)
    return [name for name in files if f.includes(f"{src_root}/{name}")]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ([], FILES),
        ([("include", "*.txt")], FILES),  # include alone changes nothing
        ([("exclude", "*"), ("include", "*.txt")], ["a.txt", "c.txt", "sub/c.txt"]),
        ([("include", "*.txt"), ("exclude", "*")], []),  # last match wins
        ([("exclude", "*.jpg")], ["a.txt", "c.txt", "sub/c.txt", "logs/x.log", "A.JPG"]),  # case-sensitive
        ([("exclude", "c.txt")], ["a.txt", "b.jpg", "sub/c.txt", "sub/d.jpg", "logs/x.log", "A.JPG"]),
        ([("exclude", "*/c.txt")], ["a.txt", "b.jpg", "c.txt", "sub/d.jpg", "logs/x.log", "A.JPG"]),
        ([("exclude", "logs")], FILES),
        ([("exclude", "logs/")], FILES),
        ([("exclude", "logs/*")], ["a.txt", "b.jpg", "c.txt", "sub/c.txt", "sub/d.jpg", "A.JPG"]),
        ([("exclude", "./a.txt")], FILES),  # no normalisation
        ([("exclude", f"{ROOT}/a.txt")], FILES[1:]),  # an absolute pattern replaces the root
        ([("exclude", "/a.txt")], FILES),
        ([("exclude", "?.txt")], ["b.jpg", "sub/c.txt", "sub/d.jpg", "logs/x.log", "A.JPG"]),
        ([("exclude", "[ab].*")], ["c.txt", "sub/c.txt", "sub/d.jpg", "logs/x.log", "A.JPG"]),
    ],
)
def test_local_rules(rules, expected):
    assert kept(rules) == expected


def test_s3_paths_are_bucket_and_key_rooted_at_the_prefix():
    f = PathFilter(build_rules(exclude=["*.log"]), src_root="/src", dst_root="bucket/pre")
    assert not f.includes("bucket/pre/deep/x.log")
    assert f.includes("bucket/pre/x.txt")
    # a pattern that repeats the prefix does not match
    g = PathFilter(build_rules(exclude=["pre/*.log"]), src_root="/src", dst_root="bucket/pre/")
    assert g.includes("bucket/pre/x.log")


def test_build_rules_puts_excludes_then_includes_then_ordered_filters():
    rules = build_rules(exclude=["e1", "e2"], include=["i1"], filters=[("--include", "f1"), ("EXCLUDE", "f2")])
    assert rules == [
        FilterRule(FilterKind.EXCLUDE, "e1"),
        FilterRule(FilterKind.EXCLUDE, "e2"),
        FilterRule(FilterKind.INCLUDE, "i1"),
        FilterRule(FilterKind.INCLUDE, "f1"),
        FilterRule(FilterKind.EXCLUDE, "f2"),
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"exclude": "*.jpg"},
        {"include": [""]},
        {"filters": [("drop", "*")]},
        {"filters": [("exclude",)]},
        {"filters": ["exclude *"]},
        {"exclude": [3]},
    ],
)
def test_build_rules_rejects_malformed_input(kwargs):
    with pytest.raises(ValueError):
        build_rules(**kwargs)
