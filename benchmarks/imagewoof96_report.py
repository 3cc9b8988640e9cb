"""Rows, table and plot of the Imagewoof results (see :mod:`benchmarks.imagewoof96`).

Reads the arms' run directories and writes ``results/imagewoof96.json`` (one row per arm, seed and
probe), ``results/imagewoof96.md``, ``results/imagewoof96.png`` (validation top-1 against training
wall-clock) and ``results/imagewoof96_epochs/`` (each finished arm's per-epoch log), and replaces
the table between the ``imagewoof96`` markers of ``docs/results-imagewoof.md``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.imagewoof96 import ARMS, RESULTS, ROOT, Arm, arm_commands, results_path

JSON_PATH = RESULTS / "imagewoof96.json"
RESULTS_PAGE = ROOT / "docs" / "results-imagewoof.md"  # the page that holds the table between its markers
START, END = "<!-- imagewoof96:start -->", "<!-- imagewoof96:end -->"


def _epochs(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "epochs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _forward_gflops(arm: Arm, run_dir: Path) -> tuple[float, float]:
    """Backbone forward GFLOPs per image at the training and at the evaluation resolution: the run's
    recorded cost (``environment.json``), else computed from its config (or the preset for the
    random-init arm)."""
    from scarce.config import build_config, load_config
    from scarce.engine.run_dir import RunDirectory
    from scarce.flops import forward_flops_per_image
    from scarce.models.backbone import build_backbone

    environment = run_dir / "environment.json"
    cost = json.loads(environment.read_text()).get("cost") if environment.exists() else None
    if cost:
        return cost["forward_flops_per_image_train"] / 1e9, cost["forward_flops_per_image_eval"] / 1e9
    config_file = run_dir / "config.yaml"
    config = build_config(RunDirectory(run_dir).read_config()) if config_file.exists() else load_config(arm.encoder)
    backbone = build_backbone(config.network_config())
    flops = [forward_flops_per_image(backbone, size) / 1e9 for size in (config.crop_size, config.model.img_size)]
    return flops[0], flops[1]


def arm_rows(arm: Arm, seed: int) -> list[dict[str, Any]]:
    """One row per probe family of a finished arm (none if it has no results yet)."""
    path = results_path(arm, seed)
    if not path.exists():
        return []
    result = json.loads(path.read_text())
    run_dir = arm.run_dir(seed)
    epoch_seconds = sorted(epoch["seconds"] for epoch in _epochs(run_dir))
    fastest = epoch_seconds[: max(1, len(epoch_seconds) // 10)]
    train_seconds = round(sum(epoch_seconds), 1)
    idle_estimate = round(len(epoch_seconds) * sum(fastest) / len(fastest), 1) if fastest else 0.0
    protocol = result["protocol"]
    headline = result["headline"]
    train_gflops, eval_gflops = _forward_gflops(arm, run_dir)
    rows = []
    for entry in result["results"]:
        test = entry["test"]
        if test is None:  # scored on validation only (not its family's selection)
            continue
        rows.append(
            {
                "arm": arm.name,
                "method": arm.method,
                "encoder": arm.encoder,
                "probe": f"{entry['family']}/{entry['probe']}",
                "headline": entry["family"] == headline["family"] and entry["probe"] == headline["probe"],
                "seed": seed,
                "top1": round(100 * test["top1"], 2),
                "top5": round(100 * test["top5"], 2),
                "mpc": round(100 * test["mean_per_class"], 2),
                "f1_macro": round(100 * test["f1_macro"], 2),
                "val_top1": round(100 * entry["val"]["top1"], 2),
                "selected": entry["selected"],
                "train_seconds": train_seconds,
                "train_seconds_idle_estimate": idle_estimate,
                "epochs": len(_epochs(run_dir)),
                "forward_gflops_per_image_train": round(train_gflops, 3),
                "forward_gflops_per_image_eval": round(eval_gflops, 3),
                "protocol": {
                    "pretraining": protocol.get("pretraining"),
                    "selection": protocol.get("selection"),
                    "test": protocol.get("test"),
                    "split_sizes": protocol.get("split_sizes"),
                    "split_seed": protocol.get("splits", {}).get("seed"),
                    "fingerprints": protocol.get("splits", {}).get("fingerprints"),
                },
                "command": arm_commands(arm, seed),
                "machine": result["environment"].get("processor", ""),
            }
        )
    return rows


def collect() -> list[dict[str, Any]]:
    return [row for arm in ARMS.values() for seed in arm.seeds for row in arm_rows(arm, seed)]


def _mean_text(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    both = " / ".join(f"{value:.1f}" for value in values)
    return f"**{statistics.mean(values):.1f}** ({both})"


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: test top-1 per arm and probe (mean and every seed), cost, and the commands."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        # by probe family: seeds may select different configurations (knn-20 / knn-100), listed in seed order
        groups.setdefault((row["arm"], row["probe"].split("/")[0]), []).append(row)
    lines = [
        "| arm | method | encoder | probe | seeds | test top-1 | top-5 | mean/class | F1 | val top-1 "
        "| train min (idle est.) | GFLOP/img train / eval |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (arm, family), group in sorted(groups.items()):
        first = group[0]
        selected = " / ".join(dict.fromkeys(row["probe"].split("/", 1)[-1] for row in group))
        probe = f"{family}/{selected}"

        def mean(key: str, group: list[dict[str, Any]] = group) -> str:
            return f"{statistics.mean(row[key] for row in group):.1f}"

        minutes = statistics.mean(row["train_seconds"] for row in group) / 60
        idle = statistics.mean(row["train_seconds_idle_estimate"] for row in group) / 60
        lines.append(
            f"| {arm} | {first['method']} | {first['encoder']} | {probe} | {len(group)} | "
            f"{_mean_text([row['top1'] for row in group])} | {mean('top5')} | {mean('mpc')} | {mean('f1_macro')} | "
            f"{mean('val_top1')} | {minutes:.0f} ({idle:.0f}) | {first['forward_gflops_per_image_train']:.2f} / "
            f"{first['forward_gflops_per_image_eval']:.2f} |"
        )
    commands = sorted({(row["arm"], row["seed"], row["command"]) for row in rows})
    lines += ["", "Commands (from the repository root; `python -m benchmarks.imagewoof96 run ARM SEED` runs them):", ""]
    lines += [f"- {arm} seed {seed}: `{command}`" for arm, seed, command in commands]
    machines = sorted({row["machine"] for row in rows})
    lines += ["", f"Machine: {', '.join(machines)} (2 cores, fp32)."]
    return "\n".join(lines)


def plot(path: Path) -> None:
    """Validation top-1 (supervised: the model; SSL: the online simple attentive probe) against
    training minutes, with the random-init floor's simple attentive probe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 6))
    for arm in ARMS.values():
        for seed in arm.seeds:
            if not results_path(arm, seed).exists():
                continue  # finished arms only
            epochs = _epochs(arm.run_dir(seed))
            key = "val_top1" if arm.name == "B" else "online_probe_val_top1"
            points = [(epoch["seconds"], epoch.get(key)) for epoch in epochs]
            if not points or points[0][1] is None:
                continue
            elapsed, minutes, accuracy = 0.0, [], []
            for seconds, value in points:
                elapsed += seconds
                minutes.append(elapsed / 60)
                accuracy.append(100 * value)
            axis.plot(minutes, accuracy, label=f"{arm.name} seed {seed}: {arm.method}", linewidth=1.2)
    axis.set_xlabel("training wall-clock (minutes, 2-core Xeon)")
    axis.set_ylabel("validation top-1 (%)")
    # the online probe is a simple attentive probe: draw each random-init floor's simple probe
    for floor_arm, tokenizer, style in (("D", "SCOTT", "--"), ("Dv", "ViT", ":")):
        floor = results_path(ARMS[floor_arm], 0)
        if not floor.exists():
            continue
        simple = [e for e in json.loads(floor.read_text())["results"] if e["probe"] == "simple"]
        if simple:
            level = 100 * simple[0]["val"]["top1"]
            label = f"{floor_arm}: random-init {tokenizer} encoder, simple probe ({level:.1f})"
            axis.axhline(level, color="grey", linestyle=style, linewidth=1, label=label)
    axis.set_title("Imagewoof 96 px: validation top-1 during training", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def update_readme(markdown: str) -> None:
    text = RESULTS_PAGE.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{RESULTS_PAGE.name} has no {START} ... {END} markers")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    RESULTS_PAGE.write_text(f"{before}{START}\n{markdown}\n{END}{after}")


def copy_epoch_logs() -> None:
    """Each finished arm's per-epoch log (loss, diagnostics, online probe, seconds) next to the
    table, as ``results/imagewoof96_epochs/ARM-sSEED.jsonl``: the evidence behind the curves."""
    target = RESULTS / "imagewoof96_epochs"
    target.mkdir(exist_ok=True)
    for arm in ARMS.values():
        for seed in arm.seeds:
            log = arm.run_dir(seed) / "epochs.jsonl"
            if results_path(arm, seed).exists() and log.exists():
                (target / f"{arm.name}-s{seed}.jsonl").write_text(log.read_text())


def report() -> None:
    rows = collect()
    copy_epoch_logs()
    JSON_PATH.write_text(json.dumps(rows, indent=2) + "\n")
    markdown = table(rows)
    (RESULTS / "imagewoof96.md").write_text("# Imagewoof 96 px results\n\n" + markdown + "\n")
    plot(RESULTS / "imagewoof96.png")
    update_readme(markdown)
    print(markdown)
