"""A run keeps the objects that existed before it out of the garbage collector's scans."""

from __future__ import annotations

import gc
import threading

from airflow_s3sync.execute.heap import frozen_heap


def test_the_heap_is_frozen_for_the_run_and_unfrozen_after():
    gc.unfreeze()
    before: list[object] = []
    with frozen_heap():
        made: list[object] = []
        scanned = gc.get_objects()  # what the collector scans: not the frozen generation
        assert not any(item is before for item in scanned)
        assert any(item is made for item in scanned)  # objects of the run are collected as usual
        del scanned
    assert gc.get_freeze_count() == 0
    assert any(item is before for item in gc.get_objects())


def test_concurrent_runs_share_one_freeze_until_the_last_ends():
    gc.unfreeze()
    entered, inner_done, outer_may_end = threading.Event(), threading.Event(), threading.Event()
    counts: list[int] = []

    def other_run() -> None:
        with frozen_heap():
            entered.set()
            outer_may_end.wait(10)
        inner_done.set()

    with frozen_heap():
        thread = threading.Thread(target=other_run)
        thread.start()
        assert entered.wait(10)
    # This run ended while the other still runs: the heap stays frozen for it.
    counts.append(gc.get_freeze_count())
    outer_may_end.set()
    inner_done.wait(10)
    thread.join()
    counts.append(gc.get_freeze_count())
    assert counts[0] > 0 and counts[1] == 0


def test_a_freeze_the_process_had_before_is_kept():
    gc.unfreeze()
    gc.freeze()  # as a forked Airflow worker inherits it
    try:
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_operators_build_their_clients_with_the_heap_frozen(moto_default, tmp_path, monkeypatch):
    """The whole ``execute`` is frozen, client construction included: botocore's model parse is
    where a cold task spends most of its fixed cost."""
    from airflow_s3sync import S3KeyRangesOperator, S3SyncOperator
    from airflow_s3sync.hooks.s3 import S3SyncHook
    from tests.conftest import new_bucket

    gc.unfreeze()
    frozen_when_built: list[int] = []
    build = S3SyncHook.get_client_type

    def observed(self, *args, **kwargs):
        frozen_when_built.append(gc.get_freeze_count())
        return build(self, *args, **kwargs)

    monkeypatch.setattr(S3SyncHook, "get_client_type", observed)
    bucket = new_bucket(moto_default)
    (tmp_path / "a.txt").write_text("a")
    S3SyncOperator(task_id="sync", source=str(tmp_path), dest=f"s3://{bucket}/").execute({})
    S3KeyRangesOperator(task_id="ranges", location=f"s3://{bucket}/", shards=2).execute({})
    assert len(frozen_when_built) >= 2
    assert all(count > 0 for count in frozen_when_built)
    assert gc.get_freeze_count() == 0
