"""Golden outputs: every preset (and the branches no preset takes) gives the recorded frames.

A change meant to keep results keeps these hashes; a change meant to alter
results re-records them (`python scripts/golden.py record`) in the same commit
and says why. See scripts/golden.py for the runs.
"""
from __future__ import annotations

import pytest

from helpers import load_script


@pytest.fixture(scope="module")
def golden():
    return load_script("golden")


def test_every_preset_gives_the_recorded_frames(golden):
    outputs = golden.compute()
    assert set(outputs) >= set(golden.runs())
    assert golden.compare(outputs) == []


def test_a_changed_frame_is_caught(golden):
    outputs = golden.compute(["superres+none"])
    outputs["superres+none"][0] = outputs["superres+none"][0].copy()
    outputs["superres+none"][0][0, 0, 0] ^= 8
    assert golden.compare(outputs) != []
