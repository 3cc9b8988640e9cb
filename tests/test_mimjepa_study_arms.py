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


def test_started_runs_stay_listed_when_their_folder_is_lost(tmp_path, monkeypatch) -> None:
    import benchmarks.mimjepa_study as study

    monkeypatch.setattr(study, "RUNS", tmp_path)
    here = tmp_path / "visible-30m-s1"
    here.mkdir()
    (here / "epochs.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    lost = {"run": "ijepa-30m-s1", "arm": "ijepa", "minutes": 30, "seed": 1, "epochs_done": 5, "budget": 83,
            "why": "interrupted", "folder_lost": False}  # fmt: skip
    finished_since = {**lost, "run": "centred-30m-s1", "arm": "centred"}
    rows = [{"arm": "centred", "minutes": 30, "seed": 1}]

    listed = {entry["run"]: entry for entry in study.unfinished_runs(rows, [lost, finished_since])}

    assert set(listed) == {"visible-30m-s1", "ijepa-30m-s1"}
    assert listed["visible-30m-s1"]["epochs_done"] == 2 and not listed["visible-30m-s1"]["folder_lost"]
    assert listed["ijepa-30m-s1"]["folder_lost"] and listed["ijepa-30m-s1"]["epochs_done"] == 5
    assert "lost with its session's machine" in study._unfinished_line(listed["ijepa-30m-s1"])


def test_the_cpu_presets_carry_the_studys_winner() -> None:
    """The table pretrains ``STUDY_ARM``'s recipe; every ``scott-cpu-*`` preset has the same MIM-JEPA
    settings (only the resolution and token grid differ), and ``scott-paper`` stays the paper's."""
    from benchmarks.label_efficiency import STUDY_ARM, _study_arm

    assert _study_arm() == STUDY_ARM
    winner = ARMS[STUDY_ARM]
    for size in (32, 64, 96):
        preset = load_config(f"scott-cpu-{size}", [])
        for override in winner.overrides:
            key, value = override.split("=")
            section, name = key.split(".")
            assert str(getattr(getattr(preset, section), name)) == value, (size, override)
    paper = load_config("scott-paper", [])
    assert (paper.mimjepa.context, paper.schedule.ema_start, paper.schedule.ema_end) == ("full", 0.996, 1.0)
