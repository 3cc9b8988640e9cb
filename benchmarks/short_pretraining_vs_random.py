"""Does a short MIM-JEPA pretraining beat a random-init encoder? (frozen linear / kNN, validation)

    python -m benchmarks.short_pretraining_vs_random

On the Imagenette subset (1,350 train / 150 val images after the carve, 32 px crops, the
``scott-tiny`` and ViT-tokenizer twins), it pretrains for a few epochs with the paper's recipe
(and two variants), then scores the context and EMA-target encoders with the linear probe and
kNN of ``scarce evaluate`` on the **validation** split, next to random-init encoders of the same
architecture (2 seeds). It is the evidence behind the README's "known result" and the starting
point of the CPU-scale results issue.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import IMAGENETTE, run_header, write_results
from scarce.config import load_config
from scarce.eval.encoders import LoadedEncoder, load_encoder, random_encoder
from scarce.evaluate import EvaluationConfig, evaluate
from scarce.pretrain import pretrain
from scarce.runtime import tune_cpu_allocator

DATA = f"npz:{IMAGENETTE}"
BASE = [f"data.spec={DATA}", "data.num_workers=0", "run.tensorboard=false", "run.online_probe=false"]
SHORT = ["schedule.epochs=3", "schedule.warmup_epochs=0.5"]
VARIANTS: dict[str, list[str]] = {
    "paper recipe, 3 epochs": SHORT,
    "paper recipe, 12 epochs": ["schedule.epochs=12", "schedule.warmup_epochs=1.6"],
    "EMA start 0.9, 3 epochs": [*SHORT, "schedule.ema_start=0.9"],
    "no weight decay, 3 epochs": [*SHORT, "optim.weight_decay=0", "optim.final_weight_decay=0"],
    "batch-centred targets, 3 epochs": [*SHORT, "mimjepa.target_centering=batch"],
    "batch-centred targets, 12 epochs": [
        "schedule.epochs=12",
        "schedule.warmup_epochs=1.6",
        "mimjepa.target_centering=batch",
    ],
}
SETTINGS = EvaluationConfig(probes=("linear", "knn"), seed=0)


def scores(loaded: LoadedEncoder) -> dict[str, float]:
    result = evaluate(loaded, DATA, SETTINGS, None, log=lambda _: None)
    return {row["family"]: round(row["val"]["top1"], 3) for row in result.rows}


def main() -> None:
    tune_cpu_allocator()
    rows: list[dict[str, Any]] = []
    scratch = Path(tempfile.mkdtemp())
    for tokenizer in ("scott", "vit"):
        model = [f"model.tokenizer={tokenizer}"]
        for seed in (0, 1):
            loaded = random_encoder(load_config("scott-tiny", model).model.encoder_config(), seed)
            rows.append({"tokenizer": tokenizer, "run": "random init", "seed": seed, "encoder": "-", **scores(loaded)})
            print(rows[-1], flush=True)
        variants = VARIANTS if tokenizer == "scott" else {"paper recipe, 3 epochs": SHORT}
        for name, extra in variants.items():
            out = scratch / f"{tokenizer}-{len(rows)}"
            pretrain(load_config("scott-tiny", BASE + model + extra), out, show_progress=False, log=lambda _: None)
            last_epoch = json.loads((out / "epochs.jsonl").read_text().splitlines()[-1])
            for which in ("context", "target"):
                rows.append(
                    {
                        "tokenizer": tokenizer,
                        "run": name,
                        "seed": 47,
                        "encoder": which,
                        "final_effective_rank": round(last_epoch["effective_rank"], 1),
                        **scores(load_encoder(out, which)),
                    }
                )  # type: ignore[arg-type]
                print(rows[-1], flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    lines = [
        "scott-tiny (D 64, depth 2, 32 px, 8x8 tokens) on Imagenette 1,350 train images; val = 150 carved images;",
        "3 epochs = 252 steps at batch 16. Validation top-1 of the frozen-feature probes of `scarce evaluate`.\n",
        "| tokenizer | run | seed | encoder | linear val top-1 | kNN val top-1 | effective rank (last epoch) |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    lines += [
        f"| {row['tokenizer']} | {row['run']} | {row['seed']} | {row['encoder']} | {row['linear']} | {row['knn']} "
        f"| {row.get('final_effective_rank', '–')} |"
        for row in rows
    ]
    write_results("short_pretraining_vs_random", {**run_header(), "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
