"""The fakes the execute tests run on keep to the backend protocol and refuse what their
capabilities do not carry (so a routing mistake fails a test instead of passing unnoticed)."""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import pytest

from airflow_s3sync.hooks.backend import Backend, ObjectBackend, ObjectRef
from airflow_s3sync.hooks.botocore_backend import BotocoreBackend
from airflow_s3sync.hooks.crt import CAPABILITIES as CRT
from airflow_s3sync.hooks.native import CAPABILITIES as OBSTORE
from tests.execute.fakes import FakeBackend, FakeHook, FakeStore


def members(protocol: type) -> dict[str, Any]:
    """The attributes and methods ``protocol`` declares (its own and its bases')."""
    found: dict[str, Any] = {}
    for cls in reversed(protocol.__mro__):
        if cls in (object, Protocol) or not getattr(cls, "_is_protocol", False):
            continue
        found.update({name: None for name in getattr(cls, "__annotations__", {})})
        found.update({name: value for name, value in vars(cls).items() if not name.startswith("_")})
    return found


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    signature = inspect.signature(function)
    return [(p.name, p.kind, p.default) for p in signature.parameters.values() if p.name != "self"]


@pytest.mark.parametrize("name", sorted(members(Backend)))
def test_the_fake_has_every_member_of_the_backend_protocol_with_its_signature(name: str) -> None:
    declared = members(Backend)[name]
    fake = FakeBackend()
    assert hasattr(fake, name)
    if callable(declared):
        assert parameters(getattr(FakeBackend, name)) == parameters(declared)
        # The real full backend keeps the same signatures: the fake stands for it.
        assert parameters(getattr(BotocoreBackend, name)) == parameters(declared)


def test_the_protocols_are_what_the_fakes_expect() -> None:
    """A guard for the test above: it reads the protocols' members."""
    assert {"upload_file", "read_object", "close", "capabilities"} <= set(members(ObjectBackend))
    assert {"list_entries", "copy_in_parts", "digests", "multipart_threshold"} <= set(members(Backend))


def test_a_fast_fake_refuses_what_its_capabilities_do_not_carry(tmp_path) -> None:
    full = FakeBackend()
    obstore, crt = full.fast(OBSTORE), full.fast(CRT)
    full.store.put("b", "k", b"data")
    file = tmp_path / "f"
    file.write_bytes(b"data")
    done = []

    obstore.upload_file(path=str(file), dest=ObjectRef("b", "plain"), size=4, extra_args={}, progress=done.append)
    with pytest.raises(AssertionError, match="does not carry upload_file"):
        obstore.upload_file(path=str(file), dest=ObjectRef("b", "a//b"), size=4, extra_args={}, progress=done.append)
    with pytest.raises(AssertionError, match="does not carry upload_file"):
        obstore.upload_file(
            path=str(file), dest=ObjectRef("b", "k2"), size=4, extra_args={"StorageClass": "X"}, progress=done.append
        )
    with pytest.raises(AssertionError, match="does not carry copy"):
        obstore.copy_object(
            source=ObjectRef("b", "k"), dest=ObjectRef("b", "k3"), size=4, extra_args={}, progress=done.append
        )
    with pytest.raises(AssertionError, match="does not carry write_whole"):
        obstore.write_object(dest=ObjectRef("b", "k4"), data=b"x", extra_args={"Expires": "x"}, progress=done.append)
    with pytest.raises(AssertionError, match="only the full backend"):
        obstore.digests(ref=ObjectRef("b", "k"))
    crt.write_object(
        dest=ObjectRef("b", "k5"), data=b"x", extra_args={"Expires": "x", "Tagging": "a=b"}, progress=done.append
    )
    assert full.store.get("b", "k5").tags == [{"Key": "a", "Value": "b"}]
    assert full.store.keys("b") == ["k", "k5", "plain"]  # nothing refused was written


def test_fakes_of_one_store_are_one_service() -> None:
    store = FakeStore()
    one, other, elsewhere = FakeBackend(store), FakeBackend(store), FakeBackend()
    assert one.same_service_as(other) and other.same_service_as(one)
    assert not one.same_service_as(elsewhere)


def test_a_fake_hook_offers_the_fast_backends_first_and_closes_them_all() -> None:
    full = FakeBackend()
    obstore, crt = full.fast(OBSTORE), full.fast(CRT)
    hook = FakeHook(full, obstore, crt)

    assert hook.transfer_backends() == (obstore, crt, full) and hook.built == 1
    hook.close_backends(cancel=True)
    assert obstore.closed == crt.closed == full.closed == [True]
