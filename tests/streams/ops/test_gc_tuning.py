"""The worker's collector settings: start-up objects frozen, young collections spaced out."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.ops.gc_tuning import YOUNG_THRESHOLD, tune_for_streaming


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_gc")
def test_tuning_freezes_what_exists_and_spaces_out_young_collections() -> None:
    _, older, oldest = gc.get_threshold()
    kept = [object() for _ in range(3)]  # tracked containers made before the call
    holder = {"kept": kept}

    tune_for_streaming()

    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, older, oldest)
    assert not any(o is holder for o in gc.get_objects())  # frozen objects are not walked
