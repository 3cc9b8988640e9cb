"""The MIM-JEPA study's arms keep their meaning when the preset changes: every lever an arm moves is
pinned in the study's baseline, so an arm differs from ``centred`` in its own levers only."""

from __future__ import annotations

from benchmarks.mimjepa_study import ARMS, BASELINE

from scarce.config import load_config


def _key(setting: str) -> str:
    return setting.split("=", 1)[0]


def test_every_lever_an_arm_moves_is_pinned() -> None:
    pinned = {_key(setting) for setting in BASELINE}
    for arm in ARMS.values():
        assert {_key(override) for override in arm.overrides} <= pinned, arm.name


def test_an_arm_differs_from_the_baseline_only_in_its_levers() -> None:
    baseline = load_config("scott-cpu-96", list(BASELINE)).model_dump()
    for arm in ARMS.values():
        config = load_config("scott-cpu-96", list(arm.settings)).model_dump()
        sections = [name for name, values in config.items() if isinstance(values, dict)]
        moved = {
            f"{name}.{key}" for name in sections for key in config[name] if config[name][key] != baseline[name][key]
        }
        assert moved <= {_key(override) for override in arm.overrides}, arm.name
        assert moved or not arm.overrides, f"{arm.name}: its overrides change nothing"
