"""The label-efficiency table: what ``scarce`` gives a user with 10, 30 or all labels per class.

    python -m benchmarks.label_efficiency plan                 # every step, its command and what it needs
    python -m benchmarks.label_efficiency run [--only STEP ...] [--max-hours H]   # resumable, step by step
    python -m benchmarks.label_efficiency report               # results/label_efficiency.{json,md,png}

Evaluation set: the npz copy of Imagewoof at 96 px (3,000 official training images, 1,000 official val
images = the **test** split, scored once per arm). Every recipe was fixed beforehand on Imagenette (the
development set: ``benchmarks.few_labels``, ``benchmarks.self_training``, ``benchmarks.mimjepa_study``)
and is applied here unchanged.

**Budgets.** 10 and 30 labels per class (``--labels-per-class N --label-seed SEED``: seeded, stratified,
the same ids in every arm of a seed, 10 a subset of 30) and all labels. A budgeted arm sees no label
beyond its budget: no validation split, the fixed recipe's last epoch is tested (``docs/few-labels.md``).
The all-label arms select on the carved validation split (2,700 train / 300 val) as before.

**Arms** (the same encoder architecture throughout: ``scott-cpu-96``, whose MIM-JEPA recipe is the
study's winner):

- ``S``: supervised from scratch. Budgets: ``scarce finetune scott-cpu-96 --random-init`` (the ``finetune-cpu``
  recipe from random weights: the few-label scratch baseline of ``benchmarks.few_labels``); all labels:
  ``scarce supervised -c scott-cpu-96`` for about 60 minutes, which is ``benchmarks.imagewoof96`` arm B:
  its two committed seeds are reused unless the study's winner changed the architecture
  (:func:`supervised_all_reusable`).
- ``S+aux``: the same with the auxiliary task chosen on the development set (DRLoc).
- ``F``: the self-supervised encoder, frozen; attentive, linear and kNN probes trained on the budget.
- ``T``: the same encoder fine-tuned (``scarce finetune``, ``finetune-cpu``).
- ``TS`` (all labels only): the same encoder trained with S's all-label recipe (``scarce supervised -c
  scott-cpu-96 --init``): S and TS differ in their initialisation only. Added after ``T-all-s0`` had run:
  ``finetune-cpu``, chosen at 10 labels per class, fell to chance after 33 of its 100 epochs with all
  labels on Imagewoof (8,400 steps instead of 300 to 900); ``T-all-s0`` stays in the table as it ran.
- ``U``: ``T`` then self-training on the unlabelled rest (``scarce semisup``, ``semisup-cpu``).
- ``K``: ``scott-small-96`` (0.44x the teacher's FLOPs per image) distilled from ``U`` (the better of
  ``T`` and ``U`` on the development set at both budgets, ``benchmarks.self_training``); with all labels
  (no ``U``) from ``TS``, because ``T``'s training there fell to chance (its validation curve shows it).
- ``M``: S3L: MoCo v2 pretraining of a ResNet-18 on 48 px crops (``mocov2-s3l``, about 60 minutes),
  fine-tuned with the S3L recipe (``finetune-s3l``).

**Pretraining** (``pretrain-sSEED``): MIM-JEPA on all 3,000 training images without a label (no
validation split carved, no online probe), once per seed, about 60 minutes of the study's calibration;
shared by F, T, TS, U and K of that seed, and counted once. Every step records its wall-clock and CPU
minutes (user + system of the ``scarce`` process; they are less sensitive to other work on the machine).

Runs live in ``$SCARCE_BENCHMARK_RUNS/label-efficiency`` (default ``/work/runs``). A finished step goes
into the results file at once (:data:`LEDGER`; ``run --commit`` also commits it): ``run`` skips it in
every later session, and rebuilds its run folder with the same command only where a later step needs it
and the folder did not survive the session's machine. An interrupted step resumes from its last
checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DATASETS,
    IMAGEWOOF,
    RESULTS_DIR,
    commit_results,
    finish_plot,
    run_header,
    run_timed,
    write_results,
)
from scarce.engine.run_dir import RunDirectory
from scarce.runtime import environment_info

RUNS = Path(os.environ.get("SCARCE_BENCHMARK_RUNS", "/work/runs")) / "label-efficiency"
DATA = f"npz:{IMAGEWOOF}"
PRESET = "scott-cpu-96"
BUDGETS: tuple[int | None, ...] = (10, 30, None)  # None: all labels
TRAINING_IMAGES = 3000  # Imagewoof's training images in the npz copy
STUDY_IMAGES = 1350  # the study's pretraining images (Imagenette, carved training split)
PRETRAIN_MINUTES = 60
WARMUP_SHARE = 0.13  # the study's (and the preset's 13 / 100)
SUPERVISED_ALL_EPOCHS = 225  # benchmarks.imagewoof96 arm B: about 60 minutes on 2,700 images
MOCO_EPOCHS = 90  # benchmarks.imagewoof96 arm E1: about 60 minutes at 48 px
MOCO_SETTINGS = (
    "backbone.kind=resnet18",
    "backbone.drop_last_stage=false",
    "model.img_size=96",
    "augmentation.crop_size=48",
    "augmentation.blur_kernel=5",
)
AUX = "aux.kind=drloc"  # benchmarks.self_training: DRLoc +0.8, rotation -1.2 (dev, all labels)
STUDENT = "scott-small-96"
MAX_STUDENT_FLOPS_RATIO = 0.5  # the issue: K costs at most half its teacher's FLOPs per image
TWO_SEEDS = ("S", "T", "U")  # two seeds at 10 and 30 labels per class; one elsewhere
ARM_ORDER = ("S", "S+aux", "F", "T", "TS", "U", "K", "M")
ALL_LABELS_ONLY = ("TS",)  # arms with all labels only
ARM_NAMES = {
    "S": "supervised from scratch",
    "S+aux": "supervised from scratch + DRLoc",
    "F": "MIM-JEPA encoder, frozen",
    "T": "MIM-JEPA encoder, fine-tuned",
    "TS": "MIM-JEPA encoder, trained with S's all-label recipe",
    "U": "fine-tuned, then self-trained on the unlabelled rest",
    "K": "student (0.44x FLOPs) distilled from U (all labels: TS)",
    "M": "S3L: MoCo v2 ResNet-18, fine-tuned",
}


@dataclass(frozen=True)
class Step:
    """One ``scarce`` command of the table: a pretraining (no row) or an arm at a budget and seed."""

    name: str
    arm: str  # pretrain | pretrain-moco | one of ARM_ORDER
    labels_per_class: int | None
    seed: int
    command: tuple[str, ...]
    needs: tuple[str, ...] = ()

    @property
    def run_dir(self) -> Path:
        return RUNS / self.name

    @property
    def results_path(self) -> Path | None:
        """Where the step's ``results.json`` lands (``None`` for a pretraining)."""
        return None if self.arm.startswith("pretrain") else self.run_dir / "results.json"

    @property
    def built(self) -> bool:
        """Whether the step's outcome is on this machine (its results, or a pretraining's encoder): a later
        step can start from it. Whether it is *done* is :func:`load_ledger`'s (committed) record."""
        marker = self.results_path or self.run_dir / "encoder.safetensors"
        return marker.exists()

    @property
    def evaluates(self) -> bool:
        """``scarce evaluate`` (an output folder, no checkpoints: rerun from the start if cut off)."""
        return self.command[1] == "evaluate"


def pretrain_epochs(study_arm: str, minutes: int = PRETRAIN_MINUTES) -> int:
    """Epochs of the study's arm that fill ``minutes`` on Imagewoof's training images, from the study's
    idle calibration (in its first machine's seconds) scaled by the number of images per epoch."""
    from benchmarks.mimjepa_study import CALIBRATION

    seconds = json.loads(CALIBRATION.read_text())["arms"][study_arm]["seconds_per_epoch"]
    return max(1, round(60 * minutes / (seconds * TRAINING_IMAGES / STUDY_IMAGES)))


def _sets(*overrides: str) -> list[str]:
    return [argument for override in overrides for argument in ("--set", override)]


def _budget(labels: int | None, seed: int) -> list[str]:
    return [] if labels is None else ["--labels-per-class", str(labels), "--label-seed", str(seed)]


def _encoder(pretrained: str) -> str:
    """The pretraining's context encoder file. ``scarce evaluate`` of the run folder would take its split
    settings from the run (``data.val_fraction=0``: no validation split for the all-label probes); of the
    file it carves the usual one (``val_fraction`` 0.1, split seed 0: the split of every all-label arm)."""
    return str(RUNS / pretrained / "encoder.safetensors")


def _label(labels: int | None) -> str:
    return "all" if labels is None else str(labels)


def plan(study_arm: str, seeds: tuple[int, ...] = (0, 1)) -> list[Step]:
    """Every step, in the order ``run`` takes them: per seed, its pretraining and every step that starts
    from it (at 10, then 30 labels per class, then all labels for the first seed), so a chain runs in one
    session where it can (a session's run folders may not outlive it: :func:`run` rebuilds a lost one);
    then the arms from scratch; S3L last. ``study_arm`` names the study arm whose recipe the
    ``scott-cpu-96`` preset now carries (its calibration fixes the pretraining epochs)."""
    steps: list[Step] = []
    epochs = pretrain_epochs(study_arm)
    for seed in seeds:
        pretrained = f"pretrain-s{seed}"
        common = ["--data", DATA, "--seed", str(seed), "--no-progress"]
        steps.append(
            Step(
                pretrained, "pretrain", None, seed,
                ("scarce", "pretrain", "-c", PRESET, "-o", str(RUNS / pretrained), "--epochs", str(epochs), *common,
                 *_sets(f"schedule.warmup_epochs={round(WARMUP_SHARE * epochs)}", "data.val_fraction=0",
                        "run.online_probe=false")),
            )
        )  # fmt: skip
        arms = ARM_ORDER[:-1] if seed == seeds[0] else TWO_SEEDS
        budgets = [labels for labels in BUDGETS if labels is not None]
        from_pretraining = [arm for arm in arms if arm not in ("S", "S+aux")]
        from_scratch = [arm for arm in arms if arm in ("S", "S+aux")]
        for labels in budgets:
            steps += [_budgeted_step(arm, labels, seed) for arm in from_pretraining if arm not in ALL_LABELS_ONLY]
        if seed == seeds[0]:
            steps += _all_label_steps(seed, from_pretraining)
        for labels in budgets:
            steps += [_budgeted_step(arm, labels, seed) for arm in from_scratch]
        if seed == seeds[0]:
            steps += _all_label_steps(seed, from_scratch)
    return steps + _s3l_steps(seeds[0])


def _budgeted_step(arm: str, labels: int, seed: int) -> Step:
    """Arm ``arm`` at ``labels`` per class, seed ``seed`` (budget and initialisation drawn by it)."""
    name, pretrained = f"{arm}-{labels}-s{seed}", f"pretrain-s{seed}"
    budget = _budget(labels, seed)
    common = [*budget, "--data", DATA, "--seed", str(seed), "--no-progress"]
    out = ["-o", str(RUNS / name), *common]
    if arm in ("S", "S+aux"):  # the preset gives the architecture (the pretrained runs' own), from random init
        extra = _sets(AUX) if arm == "S+aux" else []
        return Step(name, arm, labels, seed, ("scarce", "finetune", PRESET, "--random-init", *out, *extra))
    if arm == "F":
        probes = ["--probes", "attentive,linear,knn", "--out", str(RUNS / name)]
        return Step(
            name, arm, labels, seed, ("scarce", "evaluate", _encoder(pretrained), *probes, *common), (pretrained,)
        )
    if arm == "T":
        return Step(name, arm, labels, seed, ("scarce", "finetune", str(RUNS / pretrained), *out), (pretrained,))
    if arm == "U":
        start = f"T-{labels}-s{seed}"
        return Step(name, arm, labels, seed, ("scarce", "semisup", str(RUNS / start), *out), (start,))
    teacher = f"U-{labels}-s{seed}"  # K
    command = ("scarce", "distill", "--teacher", str(RUNS / teacher), "--student", STUDENT, *out)
    return Step(name, arm, labels, seed, command, (teacher,))


def _all_label_steps(seed: int, arms: list[str]) -> list[Step]:
    """``arms`` with all labels (selection on the carved validation split); S is left out where
    ``benchmarks.imagewoof96`` already ran it (:func:`supervised_all_reusable`), U and M have no such arm."""
    pretrained = f"pretrain-s{seed}"
    common = ["--data", DATA, "--seed", str(seed), "--no-progress"]

    def out(arm: str) -> list[str]:
        return ["-o", str(RUNS / f"{arm}-all-s{seed}"), *common]

    supervised = ("scarce", "supervised", "-c", PRESET, "--epochs", str(SUPERVISED_ALL_EPOCHS))
    recipes = {
        "T": (("scarce", "finetune", str(RUNS / pretrained), *out("T")), (pretrained,)),
        "F": (("scarce", "evaluate", _encoder(pretrained), "--probes", "attentive,linear,knn",
               "--out", str(RUNS / f"F-all-s{seed}"), *common), (pretrained,)),
        "K": (("scarce", "distill", "--teacher", str(RUNS / f"TS-all-s{seed}"), "--student", STUDENT, *out("K")),
              (f"TS-all-s{seed}",)),  # not T-all: its training fell to chance (validation 10 % from epoch 33)
        "TS": ((*supervised, "--init", str(RUNS / pretrained), *out("TS")), (pretrained,)),
        "S": ((*supervised, *out("S")), ()),
        "S+aux": ((*supervised, *out("S+aux"), *_sets(AUX)), ()),
    }  # fmt: skip
    skipped = {"U"} | ({"S"} if supervised_all_reusable() else set())  # S: rows from results/imagewoof96.json
    order = [arm for arm in ("T", "F", "TS", "K", "S", "S+aux") if arm in arms and arm not in skipped]
    return [Step(f"{arm}-all-s{seed}", arm, None, seed, *recipes[arm]) for arm in order]


def _s3l_steps(seed: int) -> list[Step]:
    """M: MoCo v2 pretraining of a ResNet-18 at 48 px, fine-tuned at 30 and 10 labels per class."""
    moco = f"pretrain-moco-s{seed}"
    common = ["--data", DATA, "--seed", str(seed), "--no-progress"]
    steps = [
        Step(
            moco, "pretrain-moco", None, seed,
            ("scarce", "pretrain", "-c", "mocov2-s3l", "--epochs", str(MOCO_EPOCHS), "-o", str(RUNS / moco), *common,
             *_sets(*MOCO_SETTINGS, "data.val_fraction=0", "run.online_probe=false")),
        )
    ]  # fmt: skip
    for labels in (30, 10):
        name = f"M-{labels}-s{seed}"
        command = ("scarce", "supervised", "-c", "finetune-s3l", "--init", str(RUNS / moco), *_budget(labels, seed),
                   "-o", str(RUNS / name), *common, *_sets("model.img_size=96", "backbone.kind=resnet18"))  # fmt: skip
        steps.append(Step(name, "M", labels, seed, command, (moco,)))
    return steps


def supervised_all_reusable() -> bool:
    """Whether S with all labels is ``benchmarks.imagewoof96``'s arm B: the same command (``scarce supervised
    -c scott-cpu-96 --epochs 225``, split seed 0, seeds 0 and 1) on the same architecture. The study's
    levers other than the token grid are MIM-JEPA settings (targets, context, masks, the target encoder's
    EMA, the two-view augmentation) that supervised training does not read (tested: moving them all leaves
    its training bit for bit the same); the token grid is the architecture, and changes it."""
    from benchmarks.mimjepa_study import BASELINE
    from scarce.config import load_config

    return load_config(PRESET, list(BASELINE)).model == load_config(PRESET, []).model


def reused_supervised_rows() -> list[dict[str, Any]]:
    """S with all labels from ``results/imagewoof96.json`` (arm B), in the rows' format; AUC was not
    recorded then."""
    listed = []
    for row in json.loads((RESULTS_DIR / "imagewoof96.json").read_text()):
        if row["arm"] != "B":
            continue
        sizes = row["protocol"]["split_sizes"]
        listed.append({
            "step": f"S-all-s{row['seed']}", "arm": "S", "labels_per_class": None, "seed": row["seed"],
            "family": "supervised", "probe": row["probe"].split("/")[-1], "selected": row["selected"],
            "test": {"top1": row["top1"] / 100, "top5": row["top5"] / 100, "mean_per_class": row["mpc"] / 100,
                     "f1_macro": row["f1_macro"] / 100, "auroc_macro": None},
            "labels_used": {"train": sizes["train"], "val": sizes["val"]},
            "selection": row["protocol"]["selection"],
            "epoch_minutes": row["train_seconds"] / 60, "wall_minutes": None, "cpu_minutes": None, "calls": None,
            "chain_cpu_minutes": 0.0, "student_flops_ratio": None, "chain": [], "pretraining": None,
            "pretraining_cpu_minutes": None, "command": row["command"], "fingerprints": row["protocol"]["fingerprints"],
            "reused_from": f"benchmarks/results/imagewoof96.json (arm B, {row['machine']})",
        })  # fmt: skip
    return listed


EPOCH_LOGS = RESULTS_DIR / "label_efficiency_epochs"
"""Each finished step's per-epoch log (``NAME.jsonl``: loss, validation top-1, pseudo-label accuracy, ...),
committed with the ledger: the evidence behind the table's notes, kept when the run folder is lost."""

LEDGER = RESULTS_DIR / "label_efficiency.json"
"""The committed results; its ``steps`` is the ledger: one entry per finished step (its rows, minutes and
command), written as the step ends, so a result outlives the machine its run folder was on."""


def load_ledger() -> dict[str, dict[str, Any]]:
    return json.loads(LEDGER.read_text()).get("steps", {}) if LEDGER.exists() else {}


def _save_entry(name: str, entry: dict[str, Any]) -> None:
    payload = json.loads(LEDGER.read_text()) if LEDGER.exists() else {}
    payload["steps"] = {**payload.get("steps", {}), name: entry}
    LEDGER.parent.mkdir(parents=True, exist_ok=True)
    LEDGER.write_text(json.dumps(payload, indent=2) + "\n")


RECIPES = (PRESET, "finetune-cpu", "semisup-cpu", "distill-cpu", "mocov2-s3l", "finetune-s3l")
"""The presets the table's commands read (those named, and the defaults of finetune, semisup, distill)."""


def recipe_fingerprint() -> str:
    """SHA-256 of every recipe the table runs, as loaded (presets with the code's defaults): a ledger entry
    made under other recipes is refused even where its command reads the same (e.g. the preset's MIM-JEPA
    settings changed, and with them every encoder the fine-tuned arms start from)."""
    from scarce.config import load_config

    recipes = {name: load_config(name, []).model_dump(mode="json") for name in RECIPES}
    return hashlib.sha256(json.dumps(recipes, sort_keys=True).encode()).hexdigest()


def _portable(command: str, runs: str, datasets: str) -> str:
    """``command`` with its machine's folders (runs, data sets) as ``$RUNS`` / ``$DATASETS``."""
    return command.replace(runs, "$RUNS").replace(datasets, "$DATASETS")


def _check_ledger(steps: list[Step], ledger: dict[str, dict[str, Any]]) -> None:
    """Refuse a ledger entry whose step the plan no longer has, or ran with another command (the recipe,
    the study arm or the epochs changed since; the folders of runs and data sets may differ): its numbers
    would not be this table's."""
    by_name = {step.name: step for step in steps}
    recipes = recipe_fingerprint()
    for name, entry in ledger.items():
        if name not in by_name:
            raise SystemExit(f"{LEDGER}: step {name} is not in the plan any more; remove its entry to go on")
        if entry.get("recipes") != recipes:
            raise SystemExit(f"{LEDGER}: {name} was run with other recipes ({', '.join(RECIPES)} changed since)")
        then = _portable(entry["command"], entry["runs"], entry["datasets"])
        if then != _portable(" ".join(by_name[name].command), str(RUNS), str(DATASETS)):
            raise SystemExit(f"{LEDGER}: {name} was run as `{entry['command']}`, the plan now says otherwise")


def run_step(step: Step) -> None:
    """Run one step (resuming a checkpointed run; an evaluation cut off is started again) and add its
    wall-clock and CPU seconds to ``benchmark_timing.json``."""
    resume = not step.evaluates and RunDirectory(step.run_dir).has_checkpoint()
    if step.run_dir.exists() and not resume:  # cut off before its first checkpoint (or an evaluation)
        shutil.rmtree(step.run_dir)
    command = [*step.command, "--resume"] if resume else list(step.command)
    step.run_dir.parent.mkdir(parents=True, exist_ok=True)
    print("$ " + " ".join(command), flush=True)
    run_timed(command, RUNS / f"{step.name}.log", record_in=step.run_dir)


def build_needs(step: Step, by_name: dict[str, Step]) -> list[str]:
    """Make every run ``step`` starts from available: a need done (in the ledger) whose folder is not on
    this machine is run again with its own command (after its own needs), and the minutes of that
    rebuild are added to its entry. Returns the names rebuilt (the step's row says so: a rebuild on
    another machine is the same recipe, not bit for bit the same weights)."""
    rebuilt: list[str] = []
    for need in step.needs:
        parent = by_name[need]
        if need not in load_ledger():  # recorded needs had their own needs recorded
            raise SystemExit(f"{step.name}: needs {need} first")
        if parent.built:
            continue
        rebuilt += build_needs(parent, by_name)
        print(f"{need}: done, but its run folder is not on this machine: rebuilding it", flush=True)
        run_step(parent)
        entry = load_ledger()[need]
        _save_entry(need, {**entry, "rebuilds": [*entry.get("rebuilds", []), _timing(parent)]})
        rebuilt.append(need)
    return rebuilt


def student_flops_ratio() -> float:
    """The student's forward FLOPs per image over the teacher's (the preset's encoder), both at 96 px."""
    from scarce.config import load_config
    from scarce.flops import forward_flops_per_image
    from scarce.models.encoder import Encoder
    from scarce.models.registry import preset_config

    teacher, student = load_config(PRESET, []).model.encoder_config(), preset_config(STUDENT)
    flops = [forward_flops_per_image(Encoder(config), config.img_size) for config in (student, teacher)]
    return flops[0] / flops[1]


def _depends_on(step: Step, names: set[str], by_name: dict[str, Step]) -> bool:
    """Whether ``step`` starts, directly or through its needs, from one of ``names``."""
    return any(need in names or _depends_on(by_name[need], names, by_name) for need in step.needs)


def run(steps: list[Step], only: list[str] | None, max_hours: float | None, commit: bool = False) -> list[str]:
    """Run the steps not in the ledger, in order (``only``: these), recording each as it ends (``commit``:
    and committing the results file, for sessions that stop without warning). ``max_hours``: start no new
    step after that many hours (a step's rebuilds of lost runs count as part of it). A step whose command
    fails is left out of the ledger with the steps that start from it, and the others go on; returns the
    failed steps' names."""
    by_name = {step.name: step for step in steps}
    unknown = sorted(set(only or ()) - set(by_name))
    if unknown:
        raise SystemExit(f"unknown steps {unknown}; `python -m benchmarks.label_efficiency plan` lists them")
    _check_ledger(steps, load_ledger())
    if any(step.arm == "K" and step.name not in load_ledger() for step in steps):
        ratio = student_flops_ratio()  # before hours of teachers, not after
        if ratio > MAX_STUDENT_FLOPS_RATIO:
            raise SystemExit(f"the student {STUDENT} costs {ratio:.2f}x its teacher's FLOPs (at most 0.5)")
    started, failed = time.monotonic(), set[str]()
    for step in steps:
        if only and step.name not in only:
            continue
        if step.name in load_ledger():
            print(f"{step.name}: done", flush=True)
            continue
        if _depends_on(step, failed, by_name):
            print(f"{step.name}: skipped, it starts from a failed step", flush=True)
            continue
        if max_hours is not None and time.monotonic() - started > 3600 * max_hours:
            print(f"stopping before {step.name}: --max-hours {max_hours} spent", flush=True)
            break
        if (RUNS / "PAUSE").exists():
            print(f"stopping before {step.name}: {RUNS / 'PAUSE'} exists", flush=True)
            break
        try:
            rebuilt = build_needs(step, by_name)
            if not step.built:  # built but not in the ledger: its record was cut off, it is not run again
                run_step(step)
        except subprocess.CalledProcessError as error:  # its log (RUNS/NAME.log) says why
            print(f"{step.name}: failed ({' '.join(error.cmd[:2])} exit {error.returncode}); going on", flush=True)
            failed.add(step.name)
            continue
        record(step, by_name, rebuilt)
        if commit:
            log = EPOCH_LOGS / f"{step.name}.jsonl"
            commit_results([LEDGER, *([log] if log.exists() else [])], f"Label-efficiency table: {step.name} done")
    return sorted(failed)


def _timing(step: Step) -> dict[str, Any]:
    """Wall and CPU minutes over the step's calls (``None`` if none was timed), their count, and the
    minutes of its training epochs from ``epochs.jsonl`` (which also count the epochs of a call that was
    lost with its session and resumed)."""
    path = step.run_dir / "benchmark_timing.json"
    timing = json.loads(path.read_text()) if path.exists() else {}
    epochs_path = step.run_dir / "epochs.jsonl"
    epochs = [json.loads(line) for line in epochs_path.read_text().splitlines()] if epochs_path.exists() else []
    return {
        "epoch_minutes": sum(record["seconds"] for record in epochs) / 60,
        "wall_minutes": timing["wall_seconds"] / 60 if timing else None,
        "cpu_minutes": timing["cpu_seconds"] / 60 if timing else None,
        "calls": timing.get("calls"),
    }


def _pretraining_of(step: Step, by_name: dict[str, Step]) -> Step | None:
    """The pretraining a step's model descends from (through its teacher or start), if any."""
    for need in step.needs:
        parent = by_name[need]
        if parent.arm.startswith("pretrain"):
            return parent
        found = _pretraining_of(parent, by_name)
        if found is not None:
            return found
    return None


def _chain(step: Step, by_name: dict[str, Step]) -> list[Step]:
    """The runs a step starts from, short of the pretraining (U: its T; K: its U and that U's T)."""
    chain, parent = [], step
    while parent.needs and not by_name[parent.needs[0]].arm.startswith("pretrain"):
        parent = by_name[parent.needs[0]]
        chain.append(parent)
    return chain


def record(step: Step, by_name: dict[str, Step], rebuilt: tuple[str, ...] | list[str] = ()) -> None:
    """Write a finished step into the ledger: a pretraining's minutes and command, or an arm's rows (one
    per probe family tested) with the test metrics, the labels used, its minutes, those of its chain and
    of the pretraining it descends from (shared, counted once per seed in the table's notes)."""
    own = _timing(step)
    epochs = step.run_dir / "epochs.jsonl"
    if epochs.exists():
        EPOCH_LOGS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(epochs, EPOCH_LOGS / f"{step.name}.jsonl")
    entry: dict[str, Any] = {
        "command": " ".join(step.command),
        "runs": str(RUNS),
        "datasets": str(DATASETS),
        "machine": environment_info()["processor"],
        "recipes": recipe_fingerprint(),
        "timing": own,
        "rebuilt_needs": list(rebuilt),
    }
    if step.results_path is None:
        _save_entry(step.name, entry)
        return
    ledger = load_ledger()
    results = json.loads(step.results_path.read_text())
    chain = _chain(step, by_name)
    chain_minutes = [ledger[link.name]["timing"]["cpu_minutes"] for link in chain]
    chain_cpu = None if None in chain_minutes else sum(chain_minutes)  # type: ignore[arg-type]
    pretraining = _pretraining_of(step, by_name)
    pretraining_cpu = None if pretraining is None else ledger[pretraining.name]["timing"]["cpu_minutes"]
    distillation = step.run_dir / "distillation.json"
    flops_ratio = json.loads(distillation.read_text())["flops_ratio"] if distillation.exists() else None
    if flops_ratio is not None and flops_ratio > MAX_STUDENT_FLOPS_RATIO:
        raise SystemExit(f"{step.name}: the student costs {flops_ratio:.2f}x its teacher's FLOPs (at most 0.5)")
    entry["rows"] = [
        {
            "step": step.name,
            "arm": step.arm,
            "labels_per_class": step.labels_per_class,
            "seed": step.seed,
            "family": result["family"],
            "probe": result["probe"],
            "selected": result.get("selected"),
            "test": {key: result["test"][key] for key in ("top1", "top5", "mean_per_class", "f1_macro", "auroc_macro")},
            "labels_used": results["protocol"].get("labels_used"),
            "selection": results["protocol"].get("selection"),
            **own,
            "chain_cpu_minutes": chain_cpu,
            "student_flops_ratio": flops_ratio,
            "chain": [link.name for link in chain],
            "rebuilt_needs": list(rebuilt),
            "pretraining": None if pretraining is None else pretraining.name,
            "pretraining_cpu_minutes": pretraining_cpu,
            "command": entry["command"],
            "fingerprints": results["protocol"].get("fingerprints"),
        }
        for result in results["results"]
        if result.get("test")  # probes not selected in their family are not tested
    ]  # fmt: skip
    _save_entry(step.name, entry)


PLOTTED_FAMILY = {"F": "linear"}  # F's line: the linear probe (it beat attentive and kNN at 10 and 30 on dev)


def _plotted(row: dict[str, Any]) -> bool:
    return row["family"] == PLOTTED_FAMILY.get(row["arm"], row["family"])


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _minutes(*values: float | None) -> str:
    """The sum of ``values`` in minutes, ``?`` when one is unknown (a step timed by no finished call)."""
    return "?" if None in values else f"{sum(values):.1f}"  # type: ignore[arg-type]


def _wall(row: dict[str, Any]) -> str:
    """A row's wall minutes; a reused row's training epochs, where that is all its benchmark recorded."""
    if row["wall_minutes"] is None and row.get("reused_from"):
        return f"{row['epoch_minutes']:.1f} epochs"
    return _minutes(row["wall_minutes"])


def _summary(listed: list[dict[str, Any]]) -> list[str]:
    """Mean test top-1 (per seed in brackets) per arm and budget; the plotted family of F."""
    lines = ["| arm | " + " | ".join(f"{_label(labels)} labels/class" for labels in BUDGETS) + " |"]
    lines.append("|---|" + "---:|" * len(BUDGETS))
    for arm in ARM_ORDER:
        cells = []
        for labels in BUDGETS:
            values = [
                r["test"]["top1"] for r in listed if r["arm"] == arm and r["labels_per_class"] == labels and _plotted(r)
            ]
            if not values:
                cells.append("–")
            elif len(values) == 1:
                cells.append(_percent(values[0]))
            else:
                cells.append(f"{_percent(statistics.mean(values))} ({' / '.join(_percent(v) for v in values)})")
        family = f" ({PLOTTED_FAMILY[arm]} probe)" if arm in PLOTTED_FAMILY else ""
        lines.append(f"| {arm}: {ARM_NAMES[arm]}{family} | " + " | ".join(cells) + " |")
    return lines


def report() -> None:
    study_arm = _study_arm()
    steps, ledger = plan(study_arm), load_ledger()
    _check_ledger(steps, ledger)
    done = [step for step in steps if step.name in ledger]
    listed = [row for step in done for row in ledger[step.name].get("rows", [])]
    listed += reused_supervised_rows() if supervised_all_reusable() else []
    pretrainings = {
        step.name: {"command": ledger[step.name]["command"], **ledger[step.name]["timing"]}
        for step in done
        if step.arm.startswith("pretrain")
    }
    lines = [
        "The label-efficiency table on Imagewoof 96 px (the evaluation set: recipes fixed on Imagenette",
        "beforehand). Test split: the 1,000 official val images, scored once per arm. Test top-1 %, mean over",
        "seeds (each seed in brackets).",
        "",
        *_summary(listed),
        "",
        "Every row (one per arm, budget, seed and probe family). `labels` = labels used for training + for",
        "validation. Minutes are the step's own; `+ chain` adds the runs it starts from (U: its T; K: its",
        "teacher U and that U's T); pretraining is listed below and shared by F, T, TS, U and K of a seed. A",
        "step's minutes cover every call the benchmark made (a resumed run: all of them); a call lost with its",
        "session is not counted. A run folder lost with its session's machine and needed by a later step",
        "was rebuilt with its own command: that step's row names it (`rebuilt_needs` in the JSON, whose",
        "`steps` also keep each rebuild's minutes); the table's minutes are the original run's.",
        "",
        "Recipes: each was fixed on Imagenette before this table, with these exceptions and caveats:",
        "",
        "- S+aux at 10 and 30 labels per class: DRLoc was chosen with all labels (`scarce supervised`), and is",
        "  applied here unchanged on top of S's few-label recipe without a development-set run of that pair.",
        "- M's fine-tuning (`finetune-s3l`: the S3L paper's SGD recipe, 120 epochs) was not run on the development",
        "  set first; it is the paper's recipe, not one tuned here. A diagnostic after the table (test scores",
        "  seen, so it selects nothing): its LR 0.1 with no warm-up is too hot for 300 labels, and a re-run of",
        "  M-30 on a rebuilt encoder reaches 25.2 % at LR 0.01 (24.0 from random init);",
        "  `results/m_fewlabel_diagnostic.md`.",
        "- S is two recipes: with 10 and 30 labels per class `finetune-cpu` from random weights (the few-label",
        "  scratch baseline, 100 epochs, last epoch tested); with all labels `scarce supervised -c scott-cpu-96`",
        "  for 225 epochs (selection on the carved validation split).",
        "- T's, U's and K's recipes (`finetune-cpu`, `semisup-cpu`, `distill-cpu`) were chosen on Imagenette",
        "  starting from the encoder of the MIM-JEPA recipe before the study's winner became the preset's default.",
        "- K's teacher is U, chosen on the development set before this table (U over T: +0.2 points at 10",
        "  labels per class, one image of 500 and one seed, +1.4 at 30; `results/self_training.md`), and not",
        "  changed after seeing these test scores. With all labels there is no U, and K's teacher is TS: it",
        "  was T until T's training there fell to chance (decided before K or TS ran with all labels).",
        "- F's three rows (attentive, linear, kNN) come from one `scarce evaluate` call: each shows that call's",
        "  minutes. The plot's F line is the linear probe, chosen on the development set.",
        "- TS was added after T with all labels had run: `finetune-cpu`, chosen at 10 labels per class, fell to",
        "  chance after 33 of its 100 epochs there (8,400 steps instead of 300 to 900); validation selected its",
        "  epoch 7. TS trains the same encoder with S's all-label recipe, so the two differ in their start only.",
        "- S with all labels reuses `benchmarks.imagewoof96` arm B where the architecture is unchanged: that",
        "  benchmark recorded the minutes of its training epochs only (in the wall column, marked `epochs`)",
        "  and no AUC.",
        '- The plot puts "all" at 300 labels per class: 270 for training and 30 for validation per class.',
        "",
        "| arm | labels/class | seed | probe | top-1 | top-5 | mean/class | macro F1 | AUC | labels | "
        "wall min | CPU min | CPU min + chain |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in listed:
        test, used = row["test"], row["labels_used"] or {}
        lines.append(
            f"| {row['arm']} | {_label(row['labels_per_class'])} | {row['seed']} | {row['family']}/{row['probe']} | "
            f"{_percent(test['top1'])} | {_percent(test['top5'])} | {_percent(test['mean_per_class'])} | "
            f"{_percent(test['f1_macro'])} | {_percent(test['auroc_macro'])} | "
            f"{used.get('train', '?')} + {used.get('val', 0) or 0} | {_wall(row)} | "
            f"{_minutes(row['cpu_minutes'])} | {_minutes(row['cpu_minutes'], row['chain_cpu_minutes'])} |"
        )
    lines += ["", "Pretraining (shared):", ""]
    lines += [
        f"- {name}: {timing['epoch_minutes']:.1f} min of epochs; {_minutes(timing['wall_minutes'])} wall min and "
        f"{_minutes(timing['cpu_minutes'])} CPU min over {timing['calls']} call(s): `{timing['command']}`"
        for name, timing in pretrainings.items()
    ]
    lines += ["", "Commands (from the repository root):", ""]
    commands = {row["step"]: row["command"] for row in listed}  # one per step (F has a row per family)
    lines += [f"- {step}: `{command}`" for step, command in commands.items()]
    payload = {**run_header(), "data": DATA, "study_arm": study_arm, "pretraining": pretrainings, "rows": listed,
               "steps": ledger}  # fmt: skip
    write_results("label_efficiency", payload, "\n".join(lines) + "\n")
    plot(listed)


def plot(listed: list[dict[str, Any]]) -> None:
    """Test top-1 against labels per class (log axis), one line per arm (mean over seeds, each seed a
    dot); the full-label supervised result as a horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    all_labels_x = TRAINING_IMAGES // 10  # "all": 300 labels per class (270 train + 30 validation)
    figure, axis = plt.subplots(figsize=(10, 4.5))
    for arm in ARM_ORDER:
        points = [r for r in listed if r["arm"] == arm and _plotted(r)]
        if not points:
            continue
        xs = sorted({r["labels_per_class"] or all_labels_x for r in points})
        means = [
            100 * statistics.mean(r["test"]["top1"] for r in points if (r["labels_per_class"] or all_labels_x) == x)
            for x in xs
        ]
        family = f" ({PLOTTED_FAMILY[arm]} probe)" if arm in PLOTTED_FAMILY else ""
        color = f"C{ARM_ORDER.index(arm)}"  # an arm keeps its colour as the table fills in
        (line,) = axis.plot(xs, means, marker="o", color=color, label=f"{arm}: {ARM_NAMES[arm]}{family}")
        for r in points:
            axis.plot(
                r["labels_per_class"] or all_labels_x, 100 * r["test"]["top1"], ".", color=line.get_color(), alpha=0.5
            )
    supervised_all = [r["test"]["top1"] for r in listed if r["arm"] == "S" and r["labels_per_class"] is None]
    if supervised_all:
        axis.axhline(100 * statistics.mean(supervised_all), color="grey", linestyle="--", label="S with all labels")
    axis.set_xscale("log")
    axis.set_xticks([10, 30, all_labels_x], ["10", "30", f"all ({all_labels_x})"])
    title = "Imagewoof 96 px: test top-1 against labels per class"
    labels = {"xlabel": "labels per class", "ylabel": "test top-1 %", "title": title}
    finish_plot(figure, axis, "label_efficiency", **labels, legend_outside=True)  # 8 lines: the legend beside


STUDY_ARM = "visible-ema-short"
"""The MIM-JEPA study arm whose recipe the ``scott-cpu-96`` preset carries (its calibration fixes the
pretraining epochs): the study's winner (``docs/mimjepa-study.md``)."""


def _study_arm() -> str:
    """:data:`STUDY_ARM`, after checking that the preset really is that arm's recipe (so the table
    never pretrains a recipe other than the one it names)."""
    from benchmarks.mimjepa_study import ARMS
    from scarce.config import load_config

    settings = list(ARMS[STUDY_ARM].settings)
    if load_config(PRESET, settings) != load_config(PRESET, []):
        raise SystemExit(f"the {PRESET} preset is not the study arm {STUDY_ARM!r} ({settings} change it)")
    return STUDY_ARM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("plan", "run", "report"))
    parser.add_argument("--only", nargs="*", help="step names (default: every step, in order)")
    parser.add_argument("--max-hours", type=float, help="start no new step after this many hours")
    parser.add_argument("--commit", action="store_true", help="git-commit the results file after each step")
    args = parser.parse_args()
    if args.action == "report":
        report()
        return
    steps = plan(_study_arm())
    if args.action == "plan":
        for step in steps:
            needs = f"  (needs {', '.join(step.needs)})" if step.needs else ""
            print(f"{step.name}{needs}\n    {' '.join(step.command)}")
        return
    failed = run(steps, args.only, args.max_hours, args.commit)
    report()
    if failed:
        raise SystemExit(f"failed (see their logs in {RUNS}): {', '.join(failed)}")


if __name__ == "__main__":
    main()
