"""The label-efficiency table's plan keeps its protocol: each budget is drawn by its seed, pretraining
sees no label, every arm starts from the run it claims, and a row counts the minutes of its chain."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from benchmarks import label_efficiency as table
from benchmarks import mimjepa_study

import scarce.config
from scarce.cli import build_parser, main
from scarce.engine.checkpoint import load_checkpoint
from tests.helpers import IMAGENETTE, needs_data


@pytest.fixture
def steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[table.Step]:
    monkeypatch.setattr(table, "RUNS", tmp_path)
    monkeypatch.setattr(table, "LEDGER", tmp_path / "ledger.json")  # never the committed results
    monkeypatch.setattr(table, "EPOCH_LOGS", tmp_path / "epoch-logs")
    return table.plan("centred")


def _after(command: tuple[str, ...], option: str) -> str:
    return command[command.index(option) + 1]


def _without(command: tuple[str, ...], *options: str) -> list[str]:
    """``command`` without ``options`` and their values."""
    dropped = {index + shift for index, word in enumerate(command) if word in options for shift in (0, 1)}
    return [word for index, word in enumerate(command) if index not in dropped]


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
            # the preset gives the architecture only
            assert step.command[1:4] == ("finetune", table.PRESET, "--random-init"), step.name
            assert not step.needs, step.name
        elif step.arm in ("S", "S+aux"):
            assert step.command[1] == "supervised" and "--init" not in step.command, step.name
        elif step.arm == "F":  # the encoder file: evaluate then carves its usual split for all labels
            assert step.command[2] == f"{pretrained}/encoder.safetensors", step.name
        elif step.arm == "T":
            assert step.command[2] == pretrained and "--random-init" not in step.command, step.name
        elif step.arm == "TS":  # S's all-label command from the pretrained encoder: the start differs, nothing else
            assert step.command[1] == "supervised" and _after(step.command, "--init") == pretrained, step.name
            with_aux = next(s for s in steps if (s.arm, s.labels_per_class, s.seed) == ("S+aux", None, step.seed))
            assert _without(step.command, "-o", "--init") == _without(with_aux.command, "-o", "--set"), step.name
        elif step.arm == "U":
            assert step.command[2] == str(tmp_path / f"T-{budget}-s{step.seed}"), step.name
        elif step.arm == "K":
            teacher = "U" if step.labels_per_class is not None else "TS"  # no unlabelled images with all labels
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
            expected = [] if arm in table.ALL_LABELS_ONLY else [0, 1] if arm in table.TWO_SEEDS else [0]
            assert seeds == expected, (arm, labels)
    with_all = {step.arm for step in arms if step.labels_per_class is None}
    reused = {"S"} if table.supervised_all_reusable() else set()  # then its rows come from imagewoof96.json
    assert with_all | reused == {"S", "S+aux", "F", "T", "TS", "K"}  # U needs unlabelled images; M runs at 10 and 30
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


def _fake_run(step: table.Step, cpu_seconds: float = 60.0) -> None:
    """What a finished step leaves: its marker file, its calls' minutes, its epochs."""
    step.run_dir.mkdir(parents=True, exist_ok=True)
    (step.run_dir / "benchmark_timing.json").write_text(json.dumps({"wall_seconds": 1.0, "cpu_seconds": cpu_seconds}))
    (step.run_dir / "epochs.jsonl").write_text('{"seconds": 30}\n{"seconds": 30}\n')
    if step.results_path is None:
        (step.run_dir / "encoder.safetensors").write_bytes(b"")
        return
    test = {"top1": 0.5, "top5": 0.9, "mean_per_class": 0.5, "f1_macro": 0.49, "auroc_macro": 0.8}
    results = [{"family": "finetune", "probe": "simple", "test": test}, {"family": "linear", "probe": "x"}]
    step.results_path.write_text(json.dumps({"results": results, "protocol": {"labels_used": {"train": 100}}}))


def test_rows_count_the_chain_and_the_pretraining(steps: list[table.Step]) -> None:
    by_name = {step.name: step for step in steps}
    for name, cpu_seconds in (("pretrain-s0", 600.0), ("T-10-s0", 60.0), ("U-10-s0", 120.0), ("K-10-s0", 30.0)):
        _fake_run(by_name[name], cpu_seconds)
        if name == "K-10-s0":
            (by_name[name].run_dir / "distillation.json").write_text(json.dumps({"flops_ratio": 0.44}))
        table.record(by_name[name], by_name)
    [row] = table.load_ledger()["K-10-s0"]["rows"]  # the untested linear result is no row
    assert (row["step"], row["chain"], row["pretraining"]) == ("K-10-s0", ["U-10-s0", "T-10-s0"], "pretrain-s0")
    assert (row["cpu_minutes"], row["chain_cpu_minutes"], row["pretraining_cpu_minutes"]) == (0.5, 3.0, 10.0)
    assert (row["epoch_minutes"], row["student_flops_ratio"], row["labels_used"]) == (1.0, 0.44, {"train": 100})
    for name in ("pretrain-s0", "T-10-s0", "U-10-s0", "K-10-s0"):  # each step's per-epoch log, kept beside the ledger
        assert (table.EPOCH_LOGS / f"{name}.jsonl").read_text() == (by_name[name].run_dir / "epochs.jsonl").read_text()
    (by_name["K-10-s0"].run_dir / "distillation.json").write_text(json.dumps({"flops_ratio": 0.6}))
    with pytest.raises(SystemExit, match=r"0\.60x its teacher's FLOPs"):
        table.record(by_name["K-10-s0"], by_name)


def test_a_done_step_is_skipped_and_a_lost_run_it_needs_is_rebuilt(
    steps: list[table.Step], monkeypatch: pytest.MonkeyPatch
) -> None:
    by_name = {step.name: step for step in steps}
    for name in ("pretrain-s0", "T-10-s0"):  # done in an earlier session, on a machine since lost
        _fake_run(by_name[name])
        table.record(by_name[name], by_name)
        shutil.rmtree(by_name[name].run_dir)
    ran: list[str] = []
    monkeypatch.setattr(table, "run_step", lambda step: (ran.append(step.name), _fake_run(step)))

    table.run(steps, ["U-10-s0"], None)
    table.run(steps, ["U-10-s0", "T-10-s0"], None)  # all done: nothing runs again

    assert ran == ["pretrain-s0", "T-10-s0", "U-10-s0"]
    ledger = table.load_ledger()
    assert ledger["U-10-s0"]["rows"][0]["rebuilt_needs"] == ["pretrain-s0", "T-10-s0"]
    assert len(ledger["T-10-s0"]["rebuilds"]) == 1 and len(ledger["pretrain-s0"]["rebuilds"]) == 1
    with pytest.raises(SystemExit, match="K-30-s0: needs U-30-s0 first"):
        table.run(steps, ["K-30-s0"], None)


def test_a_ledger_entry_run_with_another_command_is_refused(
    steps: list[table.Step], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_name = {step.name: step for step in steps}
    _fake_run(by_name["S-10-s0"])
    table.record(by_name["S-10-s0"], by_name)
    monkeypatch.setattr(table, "run_step", lambda step: pytest.fail(f"{step.name} ran"))
    monkeypatch.setattr(table, "RUNS", tmp_path / "elsewhere")  # another machine's folders: the same commands
    table._check_ledger(table.plan("centred"), table.load_ledger())
    entry = table.load_ledger()["S-10-s0"]
    table._save_entry("S-10-s0", {**entry, "command": entry["command"] + " --epochs 5"})
    with pytest.raises(SystemExit, match="S-10-s0 was run as"):
        table.run(table.plan("centred"), ["S-30-s0"], None)


def test_a_ledger_entry_made_under_other_recipes_is_refused(
    steps: list[table.Step], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commands read the same, but the preset's MIM-JEPA recipe changed under them."""
    by_name = {step.name: step for step in steps}
    _fake_run(by_name["pretrain-s0"])
    table.record(by_name["pretrain-s0"], by_name)
    monkeypatch.setattr(table, "run_step", lambda step: pytest.fail(f"{step.name} ran"))
    table._check_ledger(steps, table.load_ledger())  # unchanged recipes: accepted
    original = scarce.config.load_config

    def changed(name: str, overrides: list[str]) -> scarce.config.ScarceConfig:
        return original(name, [*overrides, "masking.ratio=0.5"] if name == table.PRESET else overrides)

    monkeypatch.setattr(scarce.config, "load_config", changed)
    with pytest.raises(SystemExit, match="pretrain-s0 was run with other recipes"):
        table.run(steps, ["T-10-s0"], None)


def test_a_failed_step_leaves_out_the_steps_that_start_from_it(
    steps: list[table.Step], monkeypatch: pytest.MonkeyPatch
) -> None:
    def run_step(step: table.Step) -> None:
        if step.name == "T-10-s0":
            raise subprocess.CalledProcessError(1, list(step.command))
        _fake_run(step)

    monkeypatch.setattr(table, "run_step", run_step)
    names = ["pretrain-s0", "T-10-s0", "U-10-s0", "K-10-s0", "F-10-s0", "S-10-s0"]
    monkeypatch.setattr(table, "record", lambda step, by_name, rebuilt=(): table._save_entry(step.name, {}))
    monkeypatch.setattr(table, "_check_ledger", lambda steps, ledger: None)

    assert table.run(steps, names, None) == ["T-10-s0"]
    assert set(table.load_ledger()) == {"pretrain-s0", "F-10-s0", "S-10-s0"}


def test_the_student_is_checked_before_any_teacher_trains(
    steps: list[table.Step], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert table.student_flops_ratio() == pytest.approx(0.44, abs=0.01)  # scott-small-96 / scott-cpu-96
    monkeypatch.setattr(table, "student_flops_ratio", lambda: 0.6)
    monkeypatch.setattr(table, "run_step", lambda step: pytest.fail(f"{step.name} ran"))
    with pytest.raises(SystemExit, match=r"0\.60x its teacher's FLOPs"):
        table.run(steps, ["pretrain-s0"], None)


def test_a_step_built_but_not_recorded_is_recorded_without_running_again(
    steps: list[table.Step], monkeypatch: pytest.MonkeyPatch
) -> None:
    by_name = {step.name: step for step in steps}
    _fake_run(by_name["pretrain-s0"])  # its record was cut off
    monkeypatch.setattr(table, "run_step", lambda step: pytest.fail(f"{step.name} ran"))
    table.run(steps, ["pretrain-s0"], None)
    assert table.load_ledger()["pretrain-s0"]["timing"]["cpu_minutes"] == 1.0


def test_the_table_refuses_a_study_arm_the_preset_does_not_carry(monkeypatch: pytest.MonkeyPatch) -> None:
    other = mimjepa_study.Arm("other", ("masking.ratio=0.3",), "not the preset")
    monkeypatch.setitem(mimjepa_study.ARMS, "other", other)
    monkeypatch.setattr(table, "STUDY_ARM", "other")
    with pytest.raises(SystemExit, match="not the study arm 'other'"):
        table._study_arm()


@needs_data
def test_supervised_training_does_not_read_the_study_levers(tmp_path: Path) -> None:
    """What :func:`~benchmarks.label_efficiency.supervised_all_reusable` rests on: every lever of the study
    but the architecture's, all moved at once, leaves ``scarce supervised`` training exactly as before."""
    levers = {o.split("=")[0]: o for arm in mimjepa_study.ARMS.values() for o in arm.overrides if "model." not in o}
    assert {"mimjepa.context", "schedule.ema_start", "augmentation.mode"} <= set(levers)

    def train(name: str, settings: list[str]) -> tuple[list[float], dict[str, torch.Tensor]]:
        sets = [argument for setting in settings for argument in ("--set", setting)]
        arguments = ["supervised", "-c", table.PRESET, "--data", f"npz:{IMAGENETTE}", "--labels-per-class", "2"]
        arguments += ["--epochs", "3", "--stop-after-epoch", "2", "--batch-size", "10", "--seed", "0"]
        quiet = ["--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]
        assert main([*arguments, "-o", str(tmp_path / name), *quiet, *sets]) == 0
        losses = [json.loads(line)["loss"] for line in (tmp_path / name / "epochs.jsonl").read_text().splitlines()]
        return losses, load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")["method"]

    baseline_losses, baseline_weights = train("baseline", list(mimjepa_study.BASELINE))
    losses, weights = train("levers", [*mimjepa_study.BASELINE, *levers.values()])
    assert len(losses) == 2 and losses == baseline_losses
    assert weights.keys() == baseline_weights.keys()
    assert all(torch.equal(weights[key], baseline_weights[key]) for key in weights)
