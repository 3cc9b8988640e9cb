"""MIM-JEPA pretraining throughput of ``scarce`` against the official SCOTT code, measured in the same run.

    python -m benchmarks.pretrain_throughput                     # tiny96, compute + full, 3 rounds
    python -m benchmarks.pretrain_throughput --quick             # 1 round, 1 + 3 steps: does it work?
    python -m benchmarks.pretrain_throughput --configs tiny96 small96 --rounds 5

No speed figure in this file is a constant: every number in the output was measured in this run.

**The reference** is the official code of the SCOTT / MIM-JEPA paper (``../shared/reference/scott``), driven by
the shared harness ``../shared/bench/ref_scott/bench.py`` (see its README: one timed step is the body of the
``for batch in dl_train`` loop of ``src/mimjepa.py``: fresh blockwise masks, target forward, context forward,
predictor, loss, backward, three gradient norms, AdamW step, EMA, and the online attentive probe's own step).
It runs in a subprocess and reports JSON.

**scarce** runs in a subprocess of this script (``--scarce-child``), set up the way ``scarce pretrain`` sets
it up: ``tune_cpu_allocator()`` (as the CLI does), ``load_config(preset, overrides)``, ``prepare_data``,
``build_trainer``, then ``Trainer.fit(stop_after_epoch=1)``, the training loop of ``scarce pretrain`` (schedules,
``train_step``: forward, backward, AdamW, EMA, online-probe step; per-step bookkeeping and its
``metrics.jsonl`` line). The training set is cut (``data.subset_total``) so that the epoch is exactly
``warmup + steps`` steps. The time of a step is the one the loop itself writes to ``metrics.jsonl``
(``images_per_second``: from the end of one step to the end of the next, so it includes waiting for the
batch); the end of the epoch (probe validation, checkpoint) comes after the last timed step.

**The same work on both sides**: the architecture, image size and batch of the harness config (``CONFIGS``
maps each one to the matching scarce preset; the parameter counts of both models are printed side by side),
the same torch threads, the same number of loader workers, warm-up and timed steps, mask ratio 0.6
(blockwise), fp32 on the CPU, images from the same npz (the harness reads the ``*_train.npz``; scarce reads
the npz folder, carves its validation split out of the train file and takes its seeded subset of that).

**Modes** (the harness's):

- ``compute``: no data loading. The reference feeds fixed ``randn`` tensors; scarce repeats one real
  augmented batch (its masks come with the batch, made by the loader; the reference draws fresh masks inside
  its step).
- ``full``: end to end. The reference's own ``get_train_transforms`` + ``DataLoader``; scarce's loader
  (augmentation and masks in the workers). The step time includes waiting for the batch on both sides.

**Rounds**: for each round, config and mode the reference runs first, then scarce, each in a fresh process;
``--rounds`` rounds. img/s of one run = batch x timed steps / sum of the timed step times (the harness's
formula). The summary gives the median over rounds of each side and their ratio, and the per-round ratios.
The first round also counts FLOPs of one step on both sides (after the timed steps) as a check that both do
the same work; every run measures the fp32 2048x2048 matmul rate before and after its steps, and the load
average is recorded, so a busy machine shows in the output.

Results: ``benchmarks/results/pretrain_throughput.{json,md}`` (or ``--name``). Needs ``einops`` for the
reference (``pip install einops``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import FULL_CONTEXT_RECIPE, IMAGEWOOF, matmul_gflops, run_header, write_results

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HARNESS = SHARED / "bench" / "ref_scott" / "bench.py"
REFERENCE = SHARED / "reference" / "scott"

# Harness config -> the scarce preset with the same architecture, image size and batch. Everything else the
# harness fixes (SwiGLU, dropout 0.2, attention dropout 0.1, stochastic depth 0.1, predictor depth 3, blockwise
# masking 0.6, 'diff' two-view augmentation) is what these presets set too.
# The reference's targets (the CPU presets centre them) and context encoder (over every token).
PAPER_TARGETS = ("mimjepa.target_centering=none", *FULL_CONTEXT_RECIPE)
CONFIGS: dict[str, dict[str, Any]] = {
    "tiny96": {
        "preset": "scott-cpu-96",
        "overrides": [*PAPER_TARGETS],
        "batch": 64,
    },  # SCOTT, 96 px, D192, depth 6, 3 heads
    "small96": {
        "preset": "scott-cpu-96",
        "overrides": [*PAPER_TARGETS, "model.embed_dim=384", "model.depth=12", "model.num_heads=4"],
        "batch": 64,
    },
    "paper224": {"preset": "scott-paper", "overrides": [], "batch": 16},  # 224 px, D384, depth 12, 4 heads
    "vit96": {"preset": "vit-cpu-96", "overrides": [*PAPER_TARGETS], "batch": 64},  # patch-embed ViT, D192, depth 6
}
MODES = ("compute", "full")


def _parameters(module: object) -> int | None:
    if not isinstance(module, torch.nn.Module):
        return None
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def scarce_child(args: argparse.Namespace) -> dict[str, Any]:
    """One scarce measurement (``args.config``, ``args.mode``, ``args.variant``) in this process: one epoch of
    ``warmup + steps`` steps of ``Trainer.fit``, timed by the loop's own per-iteration ``images_per_second``."""
    from scarce.config import load_config
    from scarce.engine.run_dir import RunDirectory
    from scarce.flops import count_flops
    from scarce.pretrain import build_trainer, prepare_data
    from scarce.runtime import tune_cpu_allocator

    malloc_tuned = tune_cpu_allocator()  # what the CLI does first
    torch.set_num_threads(args.threads)
    case = CONFIGS[args.config]
    batch = case["batch"]
    total = args.warmup + args.steps
    precision, _, suffix = args.variant.partition("-")
    overrides = [
        f"data.spec=npz:{args.data}",
        # one epoch = exactly `total` steps (drop_last): the loop's own epoch end (probe validation,
        # checkpoint) comes after the last timed step and is not timed
        f"data.subset_total={total * batch + batch // 2}",
        f"run.batch_size={batch}",
        f"run.device={args.device}",
        f"run.precision={precision}",
        f"run.compile={str(suffix == 'compile').lower()}",
        f"data.num_workers={args.workers}",
        "run.tensorboard=false",
        *case["overrides"],
    ]
    config = load_config(case["preset"], overrides)
    device = torch.device(args.device)
    data = prepare_data(config)
    with tempfile.TemporaryDirectory() as scratch:
        run = RunDirectory(Path(scratch) / "run")
        run.create()
        trainer = build_trainer(config, run, data, device, show_progress=False, log=lambda _: None)
        if trainer.steps_per_epoch != total:
            raise SystemExit(f"an epoch has {trainer.steps_per_epoch} steps, not {total}")
        trainer.sampler.set_epoch(0)
        keys = next(iter(trainer.sampler))
        fixed = trainer.loader.collate_fn([trainer.loader.dataset[key] for key in keys])  # type: ignore[attr-defined]
        workers = trainer.loader.num_workers
        if args.mode == "compute":  # the same loop over one batch, repeated: no loading at all
            trainer.loader = [fixed] * total  # type: ignore[assignment]
        matmul_before = matmul_gflops(device=str(device)) if device.type == "cpu" else None
        started = time.perf_counter()
        status = trainer.fit(stop_after_epoch=1)
        wall = time.perf_counter() - started
        records = [json.loads(line) for line in run.metrics_path.read_text().splitlines() if line.strip()]
        flops = None
        if args.flops:
            with torch.compiler.set_stance("force_eager"):
                flops = count_flops(lambda: trainer.train_step(fixed))
        matmul_after = matmul_gflops(device=str(device)) if device.type == "cpu" else None
        method = trainer.method
        params = {
            "context_encoder": _parameters(getattr(method, "context_encoder", None)),
            "predictor": _parameters(getattr(method, "predictor", None)),
            "probe": _parameters(getattr(trainer.probe, "probe", None)),
        }
    size = fixed.views[0].shape[0]
    seconds = [size / record["images_per_second"] for record in records]
    if len(seconds) != total:
        raise SystemExit(f"metrics.jsonl holds {len(seconds)} steps, expected {total} (fit: {status})")
    timed = seconds[args.warmup :]
    return {
        "side": "scarce",
        "config": args.config,
        "mode": args.mode,
        "variant": args.variant,
        "preset": case["preset"],
        "overrides": case["overrides"],
        "batch": size,
        "img_size": config.model.img_size,
        "num_workers": workers if args.mode == "full" else None,
        "threads": torch.get_num_threads(),
        "warmup_steps": args.warmup,
        "steps": args.steps,
        "img_per_s": size * len(timed) / sum(timed),
        "s_per_step_median": statistics.median(timed),
        "s_per_step_min": min(timed),
        "s_per_step_max": max(timed),
        "s_per_step_all": timed,
        "s_warmup_steps": seconds[: args.warmup],
        "loss_last": records[-1]["loss"],
        "online_probe": trainer.probe is not None,
        "gflop_per_step": None if flops is None else flops / 1e9,
        "matmul_gflops_before": matmul_before,
        "matmul_gflops_after": matmul_after,
        "params": params,
        "malloc_tuned": malloc_tuned,
        "fit_wall_s": wall,
    }


def _child_command(args: argparse.Namespace, side: str, config: str, mode: str, variant: str, flops: bool) -> list[str]:
    common = ["--warmup", str(args.warmup), "--steps", str(args.steps), "--threads", str(args.threads)]
    if side == "reference":
        command = [sys.executable, str(args.harness), "--ref", str(args.ref), "--config", config, "--mode", mode]
        command += [*common, "--num-workers", str(args.workers), "--data", str(_train_npz(args.data))]
        command += ["--device", "cpu" if args.device == "cpu" else "auto"]
        return command + ([] if flops else ["--no-flops"])
    command = [sys.executable, "-m", "benchmarks.pretrain_throughput", "--scarce-child", "--configs", config]
    command += ["--modes", mode, "--variant", variant, "--workers", str(args.workers), "--data", str(args.data)]
    command += ["--device", args.device, *common]
    return command + (["--flops"] if flops else [])


def _train_npz(folder: Path) -> Path:
    found = sorted(Path(folder).glob("*_train.npz"))
    if len(found) != 1:
        raise SystemExit(f"--data {folder}: expected exactly one *_train.npz, found {[p.name for p in found]}")
    return found[0]


def _measure(command: list[str], side: str, scratch: Path) -> dict[str, Any] | None:
    """Run one measurement process; its record, or None (with its output printed) if it failed."""
    load = os.getloadavg()[0]
    started = datetime.now(timezone.utc).strftime("%H:%M:%S")
    out = scratch / f"{side}-{time.monotonic_ns()}.json"
    if side == "reference":
        command = [*command, "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=Path(__file__).parents[1])
    if result.returncode != 0:
        print(f"  {side} FAILED (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
        return None
    if side == "reference":
        record = json.loads(out.read_text())[-1]
        for key in ("step_log", "flops_by_op", "argv"):  # bulky; the harness keeps them in its own JSON
            record.pop(key, None)
        record["side"] = "reference"
    else:
        record = json.loads(result.stdout.strip().splitlines()[-1])
    record["load_avg_1min_before"] = round(load, 2)
    record["started_utc"] = started
    return record


def _summarise(records: list[dict[str, Any]], keys: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    rows = []
    for config, mode, variant in keys:
        ref = [r for r in records if r["side"] == "reference" and r["config"] == config and r["mode"] == mode]
        ours = [
            r
            for r in records
            if r["side"] == "scarce" and r["config"] == config and r["mode"] == mode and r["variant"] == variant
        ]
        if not ref or not ours:
            continue
        ref_rates = [r["img_per_s"] for r in ref]
        our_rates = [r["img_per_s"] for r in ours]
        ref_by_round = {r["round"]: r["img_per_s"] for r in ref}
        per_round = [s["img_per_s"] / ref_by_round[s["round"]] for s in ours if s["round"] in ref_by_round]
        rows.append(
            {
                "config": config,
                "mode": mode,
                "variant": variant,
                "rounds": len(per_round),
                "reference_img_per_s_median": statistics.median(ref_rates),
                "scarce_img_per_s_median": statistics.median(our_rates),
                "ratio_of_medians": statistics.median(our_rates) / statistics.median(ref_rates),
                "ratio_per_round": per_round,
                "reference_img_per_s_all": ref_rates,
                "scarce_img_per_s_all": our_rates,
            }
        )
    return rows


def _markdown(payload: dict[str, Any]) -> str:
    s = payload["settings"]
    lines = []
    if s["quick"]:
        lines += [
            "**QUICK CHECK (`--quick`): 1 round of 1 warm-up + 3 timed steps, only to see that the script runs. "
            "These numbers are not a result.**\n"
        ]
    lines += [
        f"Same-run comparison with the official SCOTT code (`{s['harness']}`, reference `{s['reference']}`, "
        f"tree sha256 `{payload.get('reference_tree_sha256') or '?'}`). {s['threads']} torch threads on both sides, "
        f"{s['workers']} loader workers in full mode, {s['warmup']} warm-up + {s['steps']} timed steps per run, "
        f"{s['rounds']} round(s), each round the reference first and then scarce, each in a fresh process. "
        f"Training images: `{s['train_npz']}`. Device {s['device']}. img/s = batch x timed steps / their time. "
        f"scarce's processes tune glibc malloc as its CLI does (`tune_cpu_allocator`: {payload['malloc_tuned']}); "
        f"the reference runs with glibc's defaults. Whole run: {payload['wall_s'] / 60:.1f} min.\n",
        "## Result: median over rounds\n",
        "| config | mode | scarce variant | reference img/s | scarce img/s | **scarce / reference** "
        "| per-round ratios | rounds |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    for row in payload["summary"]:
        ratios = ", ".join(f"{v:.2f}" for v in row["ratio_per_round"])
        lines.append(
            f"| {row['config']} | {row['mode']} | {row['variant']} | {row['reference_img_per_s_median']:.1f} "
            f"| {row['scarce_img_per_s_median']:.1f} | **{row['ratio_of_medians']:.2f}x** | {ratios} "
            f"| {row['rounds']} |"
        )
    lines += [
        "\n## Every run\n",
        "| round | config | mode | side | img/s | s/step median (min–max) | data wait s (median) "
        "| matmul GFLOP/s | load avg before | started (UTC) |",
        "|---:|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in payload["runs"]:
        side = r["side"] if r["side"] == "reference" else f"scarce {r['variant']}"
        if r["side"] == "reference":
            low, high = min(r["s_per_step_all"]), max(r["s_per_step_all"])
            matmul = f"{r['matmul_gflops']:.0f}"
            wait = "–" if r.get("data_wait_s_median") is None else f"{r['data_wait_s_median']:.3f}"
        else:
            low, high = r["s_per_step_min"], r["s_per_step_max"]
            mm = [v for v in (r["matmul_gflops_before"], r["matmul_gflops_after"]) if v is not None]
            matmul = f"{statistics.mean(mm):.0f}" if mm else "–"
            wait = "(in step)"
        lines.append(
            f"| {r['round']} | {r['config']} | {r['mode']} | {side} | {r['img_per_s']:.1f} "
            f"| {r['s_per_step_median']:.3f} ({low:.3f}–{high:.3f}) | {wait} | {matmul} "
            f"| {r['load_avg_1min_before']} | {r['started_utc']} |"
        )
    lines += [
        "\n## Same model, same work (from the first round)\n",
        "| config | side | context encoder params | predictor params | online probe params | batch | GFLOP / step "
        "| GFLOP / image-step |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    seen = set()
    for r in payload["runs"]:
        key = (r["config"], r["side"])
        if key in seen or r.get("gflop_per_step") is None:
            continue
        seen.add(key)
        p = r.get("params") or {}
        probe = p.get("classifier") if r["side"] == "reference" else p.get("probe")
        lines.append(
            f"| {r['config']} | {r['side']} | {p.get('context_encoder')} | {p.get('predictor')} | {probe} "
            f"| {r['batch']} | {r['gflop_per_step']:.1f} | {r['gflop_per_step'] / r['batch']:.2f} |"
        )
    lines += [
        "",
        "Both sides time one whole training step: target forward, context forward + backward, predictor, loss, "
        "AdamW, EMA and the online attentive probe's step; in full mode also waiting for the batch. Neither side "
        "times the end-of-epoch evaluation or checkpoints; the reference's Logger (CSV, wandb) is not timed, "
        "scarce's one `metrics.jsonl` line per step is (it is part of its loop). The reference draws its masks inside "
        "the step; scarce draws them in the loader workers (in compute mode it repeats one batch, masks included). "
        "The reference's data wait is shown on its own; scarce's loop measures the step from the end of the "
        "previous one, so its wait is inside the step time. See the docstring of "
        "`benchmarks/pretrain_throughput.py` and `../shared/bench/ref_scott/README.md`.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["tiny96"], choices=list(CONFIGS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--rounds", type=int, default=3, help="reference-then-scarce rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per run (default 3)")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run (default 12)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="loader workers on both sides, full mode (default 2)")
    parser.add_argument("--data", type=Path, default=IMAGEWOOF, help="npz folder with one *_train.npz (+ *_val.npz)")
    parser.add_argument("--ref", type=Path, default=REFERENCE, help="checkout of the official SCOTT code")
    parser.add_argument("--harness", type=Path, default=HARNESS, help="the shared reference harness bench.py")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (scarce; the reference: auto)")
    parser.add_argument(
        "--variants", nargs="+", default=["fp32"], help="scarce side: fp32 | bf16 | fp32-compile | bf16-compile"
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 1 warm-up + 3 timed steps: a smoke check")
    parser.add_argument("--name", default="pretrain_throughput", help="results file stem under benchmarks/results")
    parser.add_argument("--scarce-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.steps = 1, 1, 3
    for variant in [*args.variants, args.variant]:
        precision, _, suffix = variant.partition("-")
        if precision not in ("fp32", "bf16") or suffix not in ("", "compile"):
            parser.error(f"unknown variant {variant!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.data, args.ref, args.harness = args.data.resolve(), args.ref.resolve(), args.harness.resolve()
    if args.scarce_child:
        args.config, args.mode = args.configs[0], args.modes[0]
        print(json.dumps(scarce_child(args)))
        return
    if not (args.ref / "src" / "mimjepa.py").is_file():
        raise SystemExit(f"--ref {args.ref}: not a checkout of the official SCOTT code (no src/mimjepa.py)")
    header = run_header()  # before anything runs: the command and the start date
    keys = [(c, m, v) for c in args.configs for m in args.modes for v in args.variants]
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(1, args.rounds + 1):
            for config in args.configs:
                for mode in args.modes:
                    first = round_index == 1
                    sides = [("reference", "fp32")] + [("scarce", v) for v in args.variants]
                    for side, variant in sides:
                        command = _child_command(args, side, config, mode, variant, flops=first)
                        record = _measure(command, side, Path(scratch))
                        if record is None:
                            continue
                        record["round"] = round_index
                        record.setdefault("variant", variant)
                        runs.append(record)
                        print(
                            f"round {round_index}/{args.rounds} {config} {mode} {side} {variant}: "
                            f"{record['img_per_s']:.1f} img/s, {record['s_per_step_median']:.3f} s/step median "
                            f"(load avg {record['load_avg_1min_before']}, {time.perf_counter() - started:.0f} s)",
                            flush=True,
                        )
    summary = _summarise(runs, keys)
    reference_runs = [r for r in runs if r["side"] == "reference"]
    payload = {
        **header,
        "wall_s": round(time.perf_counter() - started),
        "settings": {
            "configs": args.configs,
            "modes": args.modes,
            "variants": args.variants,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "steps": args.steps,
            "threads": args.threads,
            "workers": args.workers,
            "device": args.device,
            "quick": args.quick,
            "train_npz": str(_train_npz(args.data)),
            "reference": str(args.ref),
            "harness": str(args.harness),
        },
        "reference_tree_sha256": reference_runs[0].get("ref_tree_sha256") if reference_runs else None,
        "malloc_tuned": ", ".join(sorted({str(r["malloc_tuned"]) for r in runs if r["side"] == "scarce"})) or "–",
        "summary": summary,
        "runs": runs,
    }
    write_results(args.name, payload, _markdown(payload))
    if len(summary) < len(keys):
        raise SystemExit("some measurements failed; see above")


if __name__ == "__main__":
    main()
