import json
import re
import typing

import pytest

from vidrestore.config import RANGES, RunConfig, available_presets, load_preset, resolve_config
from vidrestore.errors import UsageError


def test_every_task_has_a_preset_and_a_fast_variant():
    names = available_presets()
    for task in ("superres", "inpaint", "deblur"):
        assert task in names and f"{task}-fast" in names
        resolve_config(task, f"{task}-fast")
    # interpolate's own preset is the (fast, classical) flow estimate; the prior is a variant
    assert resolve_config("interpolate").model == "none"
    assert resolve_config("interpolate", "interpolate-diffusion").model == "default"


def test_task_preset_is_the_default():
    cfg = resolve_config("superres")
    assert cfg.preset == "superres" and cfg.sampler.steps == 20 and cfg.sampler.noise == "independent"
    assert cfg.guidance.equivariance == 1.5 and cfg.guidance.sampling == "bicubic"
    assert resolve_config("superres", "superres-fast").sampler.steps <= 10


def test_set_overrides_the_preset_and_flags_override_set():
    cfg = resolve_config("superres", "superres", ["sampler.eta=0.3", "runtime.tile=128", "degradation.scale=2"])
    assert cfg.sampler.eta == 0.3 and cfg.runtime.tile == 128 and cfg.degradation.scale == 2
    with pytest.raises(UsageError, match="unknown config key degradation.boxes"):  # another task's option
        resolve_config("superres", None, ["degradation.boxes=[1,2]"])
    cfg = resolve_config("superres", None, ["sampler.steps=7"], {"sampler.steps": 3, "runtime.seed": None})
    assert cfg.sampler.steps == 3 and cfg.runtime.seed == 0


def test_preset_from_a_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("sampler:\n  steps: 5\n  noise: independent\n")
    cfg = resolve_config("deblur", str(path))
    assert cfg.sampler.steps == 5 and cfg.sampler.noise == "independent" and cfg.preset == str(path)


@pytest.mark.parametrize("sets, match", [
    (["sampler.stepz=3"], "unknown config key sampler.stepz"),
    (["sampler.steps=many"], "expected an integer"),
    (["sampler.steps"], "expected KEY=VALUE"),
    (["io.overwrite=maybe"], "expected true or false"),
    (["sampler=3"], "expected a mapping"),
    (["sampler.noise=pink"], "sampler.noise: 'pink' is not one of"),
    (["sampler.steps=0"], r"sampler.steps must be in \[1, 1000\], got 0"),
    (["runtime.overlap=-1"], "runtime.overlap"),
    (["sampler.eta=1.5"], "sampler.eta"),
    (["guidance.flow_updates=-1"], "guidance.flow_updates"),
    (["sampler.warp_correlation=1.2"], "sampler.warp_correlation"),
    (["guidance.flow_blur=-1"], "guidance.flow_blur"),
])
def test_bad_overrides_are_usage_errors(sets, match):
    with pytest.raises(UsageError, match=match):
        resolve_config("superres", None, sets)


def test_malformed_and_missing_presets(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sampler: [unclosed\n")
    with pytest.raises(UsageError, match="malformed preset"):
        load_preset(str(bad))
    with pytest.raises(UsageError, match="unknown preset"):
        resolve_config("superres", "no-such-preset")
    with pytest.raises(UsageError, match="not found"):
        resolve_config("superres", str(tmp_path / "missing.yaml"))


def test_config_round_trips_through_json():
    cfg = resolve_config("inpaint", None, ["degradation.boxes=['1,2,3,4']", "runtime.tile=64"])
    again = RunConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg


def _outside(low, high, low_open):
    """Values just outside a range (and the bound itself where it is excluded)."""
    values = []
    if low is not None:
        values.append(low if low_open else (low - 1 if isinstance(low, int) else low - 0.5))
    if high is not None:
        values.append(high + 1 if isinstance(high, int) else high + 0.5)
    return values


@pytest.mark.parametrize("key", sorted(RANGES))
def test_every_numeric_key_is_range_checked_in_one_place(key):
    low, high, low_open = RANGES[key]
    inside = [v for v in (low, high) if v is not None and not (v == low and low_open)]
    for value in inside:  # the bounds themselves are fine
        resolve_config("superres", None, [f"{key}={value}"])
    for value in _outside(low, high, low_open) + [".nan"] * isinstance(low if low is not None else high, float):
        with pytest.raises(UsageError, match=f"^{re.escape(key)} must be "):
            resolve_config("superres", None, [f"{key}={value}"])


def test_every_numeric_config_field_has_a_range():
    """A new numeric key must be added to RANGES (or it runs unchecked)."""
    cfg = resolve_config("superres")
    numeric = set()
    for section in ("sampler", "latent", "guidance", "classical", "runtime", "io", "adapt"):
        for name, hint in typing.get_type_hints(type(getattr(cfg, section))).items():
            if {int, float} & ({hint} | set(typing.get_args(hint))):
                numeric.add(f"{section}.{name}")
    assert numeric and numeric <= set(RANGES), numeric - set(RANGES)


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("0.02", 0.02), ("0", 0.0)])
def test_a_number_or_a_word_key_takes_either(value, expected):
    assert resolve_config("superres", None, [f"degradation.sigma_y={value}"]).degradation.sigma_y == expected


def test_an_untyped_overlap_follows_the_chunk():
    from vidrestore.windows import window_overlap

    assert resolve_config("superres").runtime.overlap is None
    assert [window_overlap(c, None, 0) for c in (16, 8, 4, 3, 1)] == [(16, 4), (8, 2), (4, 1), (3, 0), (1, 0)]
    assert window_overlap(4, 9, 0) == (4, 3) and window_overlap(3, None, 1) == (3, 1)
