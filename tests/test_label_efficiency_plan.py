"""The label-efficiency table's plan keeps its protocol: each budget is drawn by its seed, pretraining
sees no label, every arm starts from the run it claims, and a row counts the minutes of its chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks import label_efficiency as table
from benchmarks import mimjepa_study

from scarce.cli import build_parser


@pytest.fixture
def steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[table.Step]:
    monkeypatch.setattr(table, "RUNS", tmp_path)
    return table.plan("centred")


def _after(command: tuple[str, ...], option: str) -> str:
    return command[command.index(option) + 1]


def test_budgeted_steps_draw_the_labels_of_their_seed(steps: list[table.Step]) -> None:
    for step in steps:
        assert _after(step.command, "--seed") == str(step.seed), step.name
        if step.labels_per_class is None:
            assert "--labels-per-class" not in step.command, step.name
        else:
            assert _after(step.command, "--labels-per-class") == str(step.labels_per_class), step.name
            assert _after(step.command, "--label-seed") == str(step.seed), step.name


def test_pretraining_sees_no_label(steps: list[table.Step]) -> None:
    pretrainings = [step for step in steps if step.arm.startswith("pretrain")]
    assert {step.name for step in pretrainings} == {"pretrain-s0", "pretrain-s1", "pretrain-moco-s0"}
    for step in pretrainings:
        assert "--labels-per-class" not in step.command
        assert {"data.val_fraction=0", "run.online_probe=false"} <= set(step.command), step.name


def test_each_arm_starts_from_the_run_it_claims(steps: list[table.Step], tmp_path: Path) -> None:
    for step in steps:
        if step.arm.startswith("pretrain"):
            continue
        budget = "all" if step.labels_per_class is None else step.labels_per_class
        pretrained = str(tmp_path / f"pretrain-s{step.seed}")
        if step.arm in ("S", "S+aux") and step.labels_per_class is not None:
            # the first seed's pretrained run gives the architecture only
            assert step.command[1:4] == ("finetune", str(tmp_path / "pretrain-s0"), "--random-init"), step.name
        elif step.arm in ("S", "S+aux"):
            assert step.command[1] == "supervised" and "--init" not in step.command, step.name
        elif step.arm == "F":  # the encoder file: evaluate then carves its usual split for all labels
            assert step.command[2] == f"{pretrained}/encoder.safetensors", step.name
        elif step.arm == "T":
            assert step.command[2] == pretrained and "--random-init" not in step.command, step.name
        elif step.arm == "U":
            assert step.command[2] == str(tmp_path / f"T-{budget}-s{step.seed}"), step.name
        elif step.arm == "K":
            teacher = "U" if step.labels_per_class is not None else "T"  # no unlabelled images with all labels
            assert _after(step.command, "--teacher") == str(tmp_path / f"{teacher}-{budget}-s{step.seed}")
            assert _after(step.command, "--student") == table.STUDENT
        else:
            assert step.arm == "M" and _after(step.command, "--init") == str(tmp_path / f"pretrain-moco-s{step.seed}")
        assert ("aux.kind=drloc" in step.command) == (step.arm == "S+aux"), step.name


def test_seeds_and_budgets_of_each_arm(steps: list[table.Step]) -> None:
    arms = [step for step in steps if not step.arm.startswith("pretrain")]
    assert len({step.run_dir for step in steps}) == len(steps)
    for arm in table.ARM_ORDER:
        for labels in (10, 30):
            seeds = sorted(step.seed for step in arms if (step.arm, step.labels_per_class) == (arm, labels))
            assert seeds == ([0, 1] if arm in table.TWO_SEEDS else [0]), (arm, labels)
    with_all = {step.arm for step in arms if step.labels_per_class is None}
    reused = {"S"} if table.supervised_all_reusable() else set()  # then its rows come from imagewoof96.json
    assert with_all | reused == {"S", "S+aux", "F", "T", "K"}  # U needs unlabelled images; M runs at 10 and 30
    assert not with_all & reused


def test_reused_supervised_rows_are_the_committed_full_label_baseline() -> None:
    listed = table.reused_supervised_rows()
    assert sorted(row["seed"] for row in listed) == [0, 1]
    for row in listed:
        assert row["command"].startswith(f"scarce supervised -c {table.PRESET} --epochs {table.SUPERVISED_ALL_EPOCHS}")
        assert row["labels_used"] == {"train": 2700, "val": 300} and 0.5 < row["test"]["top1"] < 0.6


def test_every_command_parses(steps: list[table.Step]) -> None:
    parser = build_parser()
    for step in steps:
        assert step.command[0] == "scarce"
        parser.parse_args(list(step.command[1:]))
        if not step.evaluates:
            parser.parse_args([*step.command[1:], "--resume"])


def test_rows_count_the_chain_and_the_pretraining(steps: list[table.Step]) -> None:
    by_name = {step.name: step for step in steps}
    test = {"top1": 0.5, "top5": 0.9, "mean_per_class": 0.5, "f1_macro": 0.49, "auroc_macro": 0.8}
    results = {"results": [{"family": "distill", "probe": "student", "test": test}], "protocol": {}}
    (by_name["K-10-s0"].run_dir).mkdir(parents=True)
    (by_name["K-10-s0"].run_dir / "distillation.json").write_text(json.dumps({"flops_ratio": 0.44}))
    for name, cpu_seconds in (("pretrain-s0", 600.0), ("T-10-s0", 60.0), ("U-10-s0", 120.0), ("K-10-s0", 30.0)):
        run = by_name[name].run_dir
        run.mkdir(parents=True, exist_ok=True)
        (run / "benchmark_timing.json").write_text(json.dumps({"wall_seconds": 1.0, "cpu_seconds": cpu_seconds}))
        (run / "epochs.jsonl").write_text('{"seconds": 30}\n{"seconds": 30}\n')
        if name == "K-10-s0":
            (run / "results.json").write_text(json.dumps(results))
    [row] = table.rows(steps)
    assert (row["step"], row["chain"], row["pretraining"]) == ("K-10-s0", ["U-10-s0", "T-10-s0"], "pretrain-s0")
    assert (row["cpu_minutes"], row["chain_cpu_minutes"], row["pretraining_cpu_minutes"]) == (0.5, 3.0, 10.0)
    assert (row["epoch_minutes"], row["student_flops_ratio"]) == (1.0, 0.44)
    (by_name["K-10-s0"].run_dir / "distillation.json").write_text(json.dumps({"flops_ratio": 0.6}))
    with pytest.raises(SystemExit, match=r"0\.60x its teacher's FLOPs"):
        table.rows(steps)


def test_the_table_refuses_a_study_arm_the_preset_does_not_carry(monkeypatch: pytest.MonkeyPatch) -> None:
    other = mimjepa_study.Arm("other", ("masking.ratio=0.3",), "not the preset")
    monkeypatch.setitem(mimjepa_study.ARMS, "other", other)
    monkeypatch.setattr(table, "STUDY_ARM", "other")
    with pytest.raises(SystemExit, match="not the study arm 'other'"):
        table._study_arm()
