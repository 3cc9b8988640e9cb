"""Make MIM-JEPA learn at small scale: one lever per arm, the same pretraining budget, the same probes.

    python -m benchmarks.mimjepa_study calibrate [--arms A,B]     # idle machine: seconds per epoch of each arm
    python -m benchmarks.mimjepa_study run --arms A,B [--minutes 30] [--seed 0]   # resumable, arm after arm
    python -m benchmarks.mimjepa_study report                      # results/mimjepa_study.{md,png} from the JSON

Development set: the npz copy of Imagenette (1,350 carved training images, 150 carved validation
images, 500 official val images). Selection uses only these two validation splits; no number here
is a result (the label-efficiency table applies the winner to Imagewoof unchanged).

**Arms.** Round 1 moves one lever of the starting recipe (``scott-cpu-96``, batch-centred targets)
at a time. Round 2 moves each remaining lever on top of round 1's best (the visible-only context),
a greedy search: with a 30-minute screen per arm on 2 cores, the full grid is out of reach.

**Budget.** ``calibrate`` runs two epochs of every arm on an idle machine and records the second
epoch's seconds; an arm's epochs for a budget of M minutes are ``round(60 M / seconds)``, warm-up
13 % of them (the preset's 13 / 100). The epochs are fixed in ``results/mimjepa_study_calibration.json``
before any timed run, so an arm run in a later session (the CPU model changes from session to
session) gets the same number of epochs; its own wall-clock and CPU minutes are recorded as measured.

**Scores** (``scarce evaluate``): linear and kNN probes on cached features and the three attentive
probes for 20 epochs, each selected on the carved validation split; ``val`` = carved validation
(150 images), ``dev`` = Imagenette's official val split (500 images, scored once per family). The
study's score is the dev linear top-1 (the larger split); both are listed. Every run is appended
to ``results/mimjepa_study.json`` as it finishes, including the random-init floor.

Runs live in ``$SCARCE_BENCHMARK_RUNS/mimjepa-study`` (default ``/work/runs``). Creating the file
``PAUSE`` there makes ``run`` wait before its next arm (to run tests on an idle machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    IMAGENETTE,
    RESULTS_DIR,
    commit_results,
    finish_plot,
    label_axis,
    matmul_gflops,
    run_header,
    run_timed,
    write_results,
)

RUNS = Path(os.environ.get("SCARCE_BENCHMARK_RUNS", "/work/runs")) / "mimjepa-study"
DATA = f"npz:{IMAGENETTE}"
PRESET = "scott-cpu-96"
WARMUP_SHARE = 0.13
CALIBRATION = RESULTS_DIR / "mimjepa_study_calibration.json"
RESULTS = RESULTS_DIR / "mimjepa_study.json"
PROBE_EPOCHS = 20


BASELINE = (
    "model.stride=16",
    "mimjepa.target_centering=batch",
    "mimjepa.target_layers=1",
    "mimjepa.context=full",
    "masking.kind=blockwise",
    "schedule.ema_start=0.996",
    "schedule.ema_end=1.0",
    "augmentation.mode=diff",
)
"""The study's starting recipe (``centred``: ``scott-cpu-96`` as the study began), pinned lever by lever so
that an arm keeps its meaning when the preset's defaults become the study's winner."""


@dataclass(frozen=True)
class Arm:
    """One lever: ``--set`` overrides of the study's starting recipe (:data:`BASELINE`)."""

    name: str
    overrides: tuple[str, ...]
    note: str

    @property
    def settings(self) -> tuple[str, ...]:
        """Every ``--set`` of the arm: the pinned baseline, then its own overrides (later ones win)."""
        return (*BASELINE, *self.overrides)


ARMS = {
    arm.name: arm
    for arm in (
        Arm("centred", (), "the CPU default before the study: scott-cpu-96, batch-centred targets, blockwise 60 %"),
        Arm("visible", ("mimjepa.context=visible",), "context encoder over the visible tokens only (I-JEPA / MAE)"),
        Arm("top3", ("mimjepa.target_layers=3",), "targets: mean of the last 3 of 6 blocks, instance-normed"),
        Arm("multiblock", ("masking.kind=multiblock",), "I-JEPA masks: 4 targets of 15-20 %, context 85-100 %"),
        Arm(
            "ijepa",
            ("masking.kind=multiblock", "mimjepa.context=visible"),
            "I-JEPA's pair: multi-block masks and a visible-only context",
        ),
        Arm("grid12", ("model.stride=8",), "12x12 tokens (stride 8) instead of 6x6"),
        Arm("ema-short", ("schedule.ema_start=0.99", "schedule.ema_end=0.999"), "EMA 0.99 -> 0.999"),
        Arm("no-aug", ("augmentation.mode=none",), "no augmentation (as I-JEPA): both views the same image"),
        # round 2: each lever on top of round 1's best, the visible-only context (cheaper steps, so
        # more epochs in the same minutes)
        *(
            Arm(f"visible-{arm}", ("mimjepa.context=visible", *overrides), f"visible-only context + {note}")
            for arm, overrides, note in (
                ("top3", ("mimjepa.target_layers=3",), "top-3 targets"),
                ("ema-short", ("schedule.ema_start=0.99", "schedule.ema_end=0.999"), "EMA 0.99 -> 0.999"),
                ("no-aug", ("augmentation.mode=none",), "no augmentation"),
                ("grid12", ("model.stride=8",), "12x12 tokens"),
            )
        ),
    )
}
RANDOM_INIT = "random-init"
REFERENCE_ARM = "centred"  # re-timed by every later calibration (see :func:`calibrate`)


def run_dir(arm: str, minutes: int, seed: int) -> Path:
    return RUNS / f"{arm}-{minutes}m-s{seed}"


def pretrain_command(arm: Arm, epochs: int, seed: int, out: Path, resume: bool) -> list[str]:
    command = ["scarce", "pretrain", "-c", PRESET, "--data", DATA, "-o", str(out), "--epochs", str(epochs)]
    command += ["--seed", str(seed), "--no-progress", "--set", f"schedule.warmup_epochs={round(WARMUP_SHARE * epochs)}"]
    for override in arm.settings:
        command += ["--set", override]
    return command + (["--resume"] if resume else [])


def evaluate_command(source: Path | None, out: Path, seed: int) -> list[str]:
    probes = ["--probes", "linear,knn,attentive", "--epochs", str(PROBE_EPOCHS), "--seed", str(seed)]
    head = ["scarce", "evaluate", str(source)] if source else ["scarce", "evaluate", "--random-init", "-c", PRESET]
    return [*head, "--data", DATA, *probes, "--out", str(out), "--no-progress"]


def read_epochs(run: Path) -> list[dict[str, Any]]:
    path = run / "epochs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _time_two_epochs(name: str) -> tuple[float, str]:
    """The second epoch's seconds of a fresh two-epoch run of arm ``name``, and its command."""
    out = RUNS / "calibration" / name
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = pretrain_command(ARMS[name], 2, 0, out, resume=False)
    run_timed(command, RUNS / "calibration.log")
    return float(read_epochs(out)[-1]["seconds"]), " ".join(command)


def calibrate(arms: list[str]) -> None:
    """Two epochs of each arm on an idle machine; the second epoch's seconds fix the budgets.

    The CPU changes from session to session, so seconds from two sessions are not comparable. The
    first calibration's machine is the unit: a later calibration also times the reference arm
    (``centred``) in the same run and scales its arms by ``reference seconds then / now``, so every
    arm's ``seconds_per_epoch`` is in the first machine's seconds and a 30-minute budget means the
    same compute whichever session calibrated it. Each record keeps its measured seconds, the
    scale, the processor and the matmul rate of its own run."""
    existing = json.loads(CALIBRATION.read_text()) if CALIBRATION.exists() else {}
    records = existing.get("arms", {})
    header = {**run_header(), "matmul_gflops": matmul_gflops()}
    scale = 1.0
    if REFERENCE_ARM in records:
        reference_now, _ = _time_two_epochs(REFERENCE_ARM)
        scale = records[REFERENCE_ARM]["seconds_per_epoch"] / reference_now
        print(f"{REFERENCE_ARM} (reference): {reference_now:.1f} s per epoch now, scale {scale:.3f}", flush=True)
    for name in arms:
        if name == REFERENCE_ARM and scale != 1.0:
            continue  # the unit stays the first calibration's
        seconds, command = _time_two_epochs(name)
        records[name] = {
            "seconds_per_epoch": seconds * scale,
            "measured_seconds_per_epoch": seconds,
            "scale_to_first_machine": scale,
            "command": command,
            "date": header["date"],
            "processor": header["environment"]["processor"],
            "matmul_gflops": header["matmul_gflops"],
        }
        print(f"{name}: {seconds:.1f} s per epoch measured, {seconds * scale:.1f} in the first machine's", flush=True)
    first = existing.get("first_machine") or {key: header[key] for key in ("date", "environment", "matmul_gflops")}
    CALIBRATION.write_text(json.dumps({**header, "first_machine": first, "arms": records}, indent=2) + "\n")


def budget_epochs(name: str, minutes: int) -> int:
    seconds = json.loads(CALIBRATION.read_text())["arms"][name]["seconds_per_epoch"]
    return max(1, round(60 * minutes / seconds))


def wait_while_paused() -> None:
    while (RUNS / "PAUSE").exists():
        time.sleep(20)


def scores(results: dict[str, Any]) -> dict[str, Any]:
    """Per family: the selected probe's val (carved) and dev (official val) top-1."""
    out: dict[str, Any] = {}
    for row in results["results"]:
        if not row.get("test"):  # probes not selected within their family are not tested
            continue
        out[row["family"]] = {
            "probe": row["probe"],
            "selected": row["selected"],
            "val_top1": row["val"]["top1"],
            "dev_top1": row["test"]["top1"],
            "dev_mean_per_class": row["test"]["mean_per_class"],
        }
    return out


def load_results() -> dict[str, Any]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def load_rows() -> list[dict[str, Any]]:
    return load_results().get("runs", [])


def save_row(row: dict[str, Any]) -> None:
    """Add (or replace) one finished run in the committed results, keeping the rest of the file."""
    results = load_results()
    rows = [r for r in load_rows() if (r["arm"], r["minutes"], r["seed"]) != (row["arm"], row["minutes"], row["seed"])]
    RESULTS.write_text(json.dumps({**results, "runs": [*rows, row]}, indent=2) + "\n")


def run_arm(name: str, minutes: int, seed: int) -> dict[str, Any]:
    out = run_dir(name, minutes, seed)
    out.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log"
    row: dict[str, Any] = {"arm": name, "minutes": minutes, "seed": seed, **run_header()}
    evaluated = (out / "eval" / "results.json").exists()  # a run cut off after its evaluation
    if name == RANDOM_INIT:
        command = evaluate_command(None, out / "eval", seed)
        wall, cpu = run_timed(command, log) if not evaluated else (0.0, 0.0)
        row |= {"note": "random-init floor (no pretraining)", "evaluate_command": " ".join(command), "epochs": 0}
        row |= {"evaluate_wall_seconds": wall, "evaluate_cpu_seconds": cpu}
    else:
        arm = ARMS[name]
        epochs = budget_epochs(name, minutes)
        done = len(read_epochs(out))
        resume = (out / "checkpoints" / "last.pt").exists()
        command = pretrain_command(arm, epochs, seed, out, resume=False)
        wall = cpu = 0.0
        if done < epochs:
            wall, cpu = run_timed(pretrain_command(arm, epochs, seed, out, resume=resume), log)
        records = read_epochs(out)
        eval_command = evaluate_command(out, out / "eval", seed)
        eval_wall, eval_cpu = run_timed(eval_command, log) if not evaluated else (0.0, 0.0)
        ranks = [record["effective_rank"] for record in records]
        row |= {
            "note": arm.note,
            "overrides": list(arm.overrides),
            "epochs": epochs,
            "pretrain_command": " ".join(command),
            "evaluate_command": " ".join(eval_command),
            "resumed": resume,
            "pretrain_wall_seconds_this_call": wall,
            "pretrain_cpu_seconds_this_call": cpu,
            "pretrain_epoch_seconds": sum(record["seconds"] for record in records),
            "images_per_second": statistics.median(record["images_per_second"] for record in records),
            "effective_rank": {"epoch_1": ranks[0], "lowest": min(ranks), "last": ranks[-1]},
            "collapsed": ranks[-1] < 0.5 * ranks[0],
            "fingerprint": json.loads((out / "environment.json").read_text()).get("pretrain_fingerprint"),
            "curve": [
                {"epoch": r["epoch"], "seconds": r["seconds"], "online_probe_val_top1": r.get("online_probe_val_top1")}
                for r in records
            ],
            "evaluate_wall_seconds": eval_wall,
            "evaluate_cpu_seconds": eval_cpu,
        }
    row["scores"] = scores(json.loads((out / "eval" / "results.json").read_text()))
    save_row(row)
    return row


def run(arms: list[str], minutes: int, seed: int, commit: bool = False) -> None:
    """Run each arm not yet in the results, in order; after each, write the report (``commit``: and
    git-commit it, for sessions that stop without warning)."""
    finished = {(r["arm"], r["minutes"], r["seed"]) for r in load_rows()}
    for name in arms:
        if (name, minutes, seed) in finished:
            print(f"{name}: done, skipped", flush=True)
            continue
        wait_while_paused()
        print(f"{name}: {minutes} min, seed {seed}", flush=True)
        row = run_arm(name, minutes, seed)
        linear = row["scores"].get("linear", {})
        print(f"{name}: dev linear {linear.get('dev_top1', float('nan')):.3f}", flush=True)
        report()
        if commit:
            outputs = [RESULTS_DIR / f"mimjepa_study.{suffix}" for suffix in ("json", "md", "png")]
            commit_results(outputs, f"MIM-JEPA study: {name} at {minutes} minutes, seed {seed}")
    report()


def _cell(row: dict[str, Any], family: str, key: str) -> str:
    value = row["scores"].get(family, {}).get(key)
    return "–" if value is None else f"{100 * value:.1f}"


def report() -> None:
    rows = load_rows()
    calibration = json.loads(CALIBRATION.read_text())
    lines = [
        "Every MIM-JEPA study run on Imagenette (the development set), in the order run. Budget: epochs fixed",
        "from an idle two-epoch calibration (`results/mimjepa_study_calibration.json`; seconds in the first "
        f"calibration's machine, {calibration['first_machine']['environment']['processor']}, later arms scaled "
        "by the reference arm re-timed in their own calibration run). Scores: top-1 % of the probe selected",
        "on the carved validation split (val, 150 images) and on Imagenette's official val split (dev, 500 images).",
        "",
        "Speed: seconds per epoch in the idle calibration (comparable across arms); pretraining minutes as",
        "measured in the run itself, on the CPU of its session (`machine`). `measured / calibrated` divides",
        "them by epochs x calibrated s/epoch: above 1 means other work on the machine or a slower CPU than",
        "the calibration's, below 1 a faster CPU. The scores depend on neither (fixed epochs, deterministic runs).",
        "",
        "| arm | min | seed | epochs | s/epoch (idle) | rank 1st → last | linear val / dev | kNN val / dev "
        "| attentive val / dev | pretrain min (measured) | measured / calibrated | machine | what |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        rank = row.get("effective_rank")
        rank_text = f"{rank['epoch_1']:.1f} → {rank['last']:.1f}" if rank else "–"
        calibrated = calibration["arms"].get(row["arm"], {}).get("seconds_per_epoch")
        speed = f"{calibrated:.1f}" if calibrated and row["epochs"] else "–"
        wall = f"{row['pretrain_epoch_seconds'] / 60:.1f}" if "pretrain_epoch_seconds" in row else "0"
        expected = calibrated * row["epochs"] if calibrated and row["epochs"] else None
        load = f"{row['pretrain_epoch_seconds'] / expected:.2f}" if expected else "–"
        cells = [
            row["arm"],
            str(row["minutes"]) if row["epochs"] else "0",
            str(row["seed"]),
            str(row["epochs"]),
            speed,
            rank_text + (" **collapsed**" if row.get("collapsed") else ""),
            f"{_cell(row, 'linear', 'val_top1')} / {_cell(row, 'linear', 'dev_top1')}",
            f"{_cell(row, 'knn', 'val_top1')} / {_cell(row, 'knn', 'dev_top1')}",
            f"{_cell(row, 'attentive', 'val_top1')} / {_cell(row, 'attentive', 'dev_top1')}",
            wall,
            load,
            row.get("environment", {}).get("processor", "?"),
            ARMS[row["arm"]].note if row["arm"] in ARMS else row["note"],  # the code's (current) wording
        ]
        lines.append("| " + " | ".join(cells) + " |")
    unfinished = unfinished_runs(rows, load_results().get("unfinished", []))
    if unfinished:
        lines += ["", "Started and not finished (resumable while their folder is here; no score):", ""]
        lines += [f"- {_unfinished_line(entry)}" for entry in unfinished]
    lines += ["", "Commands:", ""]
    for row in rows:
        if "pretrain_command" in row:
            lines.append(f"- {row['arm']} ({row['minutes']} min, seed {row['seed']}): `{row['pretrain_command']}`")
            lines.append(f"  then `{row['evaluate_command']}`")
        else:
            lines.append(f"- {row['arm']} (seed {row['seed']}): `{row['evaluate_command']}`")
    payload = {**run_header(), "calibration": calibration, "runs": rows, "unfinished": unfinished}
    markdown = "\n".join(lines) + "\n"
    write_results("mimjepa_study", payload, markdown)
    plot(rows)


STOPPED = {
    "top3-30m-s0": "stopped for round 2, which tests top-3 targets on the visible-only context (visible-top3)",
}
"""Why a started run was left unfinished, by run folder name."""


def unfinished_runs(rows: list[dict[str, Any]], recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every started run without a row: the run folders here, and the ``recorded`` ones (the committed
    results' ``unfinished``) whose folder is gone with the machine of their session (kept, so the table
    lists every run tried even on a new machine). A row of the same run ends its entry."""
    finished = {run_dir(row["arm"], row["minutes"], row["seed"]).name for row in rows}
    found: dict[str, dict[str, Any]] = {}
    for folder in sorted(RUNS.glob("*-*m-s*")) if RUNS.exists() else []:
        match = re.fullmatch(r"(?P<arm>.+)-(?P<minutes>\d+)m-s(?P<seed>\d+)", folder.name)
        if match is None or folder.name in finished or match["arm"] not in ARMS:
            continue
        minutes = int(match["minutes"])
        found[folder.name] = {
            "run": folder.name, "arm": match["arm"], "minutes": minutes, "seed": int(match["seed"]),
            "epochs_done": len(read_epochs(folder)), "budget": budget_epochs(match["arm"], minutes),
            "why": STOPPED.get(folder.name, "running or interrupted"), "folder_lost": False,
        }  # fmt: skip
    for entry in recorded:
        if entry["run"] not in finished and entry["run"] not in found:
            found[entry["run"]] = {**entry, "folder_lost": True}
    return list(found.values())


def _unfinished_line(entry: dict[str, Any]) -> str:
    done = "?" if entry["epochs_done"] is None else entry["epochs_done"]
    lost = "; its run folder was lost with its session's machine" if entry["folder_lost"] else ""
    run = f"{entry['arm']} ({entry['minutes']} min, seed {entry['seed']})"
    return f"{run}: {done} of {entry['budget']} epochs; {entry['why']}{lost}"


def plot(rows: list[dict[str, Any]]) -> None:
    """Online-probe validation top-1 against pretraining minutes, one line per run; the final dev
    linear top-1 as a marker at the end of each line. Left: the 30-minute screen; right: the longer
    confirmation runs. Minutes are the budget's (epoch x the calibrated seconds per epoch), so runs
    made on machines of different speed share one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (screen_axis, long_axis) = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for row in rows:
        if not row.get("curve"):
            if row["arm"] == RANDOM_INIT and "linear" in row["scores"]:
                floor = 100 * row["scores"]["linear"]["dev_top1"]
                for axis in (screen_axis, long_axis):
                    axis.axhline(floor, color="grey", linestyle=":", label="random init (linear, dev)")
            continue
        axis = screen_axis if row["minutes"] <= 30 else long_axis
        minutes_per_epoch = row["minutes"] / row["epochs"]
        minutes = [minutes_per_epoch * (index + 1) for index in range(len(row["curve"]))]
        online = [100 * (record["online_probe_val_top1"] or 0.0) for record in row["curve"]]
        label = f"{row['arm']} {row['minutes']} min s{row['seed']}"
        (line,) = axis.plot(minutes, online, label=label, linewidth=1)
        if "linear" in row["scores"]:
            axis.plot(minutes[-1], 100 * row["scores"]["linear"]["dev_top1"], "o", color=line.get_color())
    label_axis(
        screen_axis,
        xlabel="pretraining minutes (calibrated)",
        ylabel="top-1 % (line: online probe, val; dot: linear probe, dev)",
        title="30-minute screen, seed 0",
    )
    finish_plot(
        figure,
        long_axis,
        "mimjepa_study",
        xlabel="pretraining minutes (calibrated)",
        ylabel="",
        title="60- and 180-minute runs (Imagenette 96 px, development set)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["calibrate", "run", "report"])
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms (and random-init for run)")
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commit", action="store_true", help="run: git-commit the results after each arm")
    args = parser.parse_args()
    arms = [name for name in args.arms.split(",") if name]
    unknown = [name for name in arms if name not in ARMS and name != RANDOM_INIT]
    if unknown:
        parser.error(f"unknown arms {unknown}; known: {[*ARMS, RANDOM_INIT]}")
    if args.action == "calibrate":
        calibrate([name for name in arms if name != RANDOM_INIT])
    elif args.action == "run":
        run(arms, args.minutes, args.seed, args.commit)
    else:
        report()


if __name__ == "__main__":
    main()
