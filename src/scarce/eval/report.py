"""Evaluation results as a table, ``results.json`` and ``results.md``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scarce.engine.checkpoint import atomic_write

COLUMNS = ("top1", "top5", "mean_per_class", "f1_macro", "auroc_macro")


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def results_table(payload: dict[str, Any]) -> str:
    """Markdown table: one row per probe, validation top-1 and the test metrics (once per family)."""
    lines = [
        "| family | probe | selected | val top-1 | test top-1 | test top-5 | test mean/class | test F1 | test AUC |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    headline = payload.get("headline") or {}
    for row in payload["results"]:
        test = row["test"] or {}
        selected = ", ".join(f"{key} {value}" for key, value in row["selected"].items() if not isinstance(value, dict))
        marker = (
            " **(headline)**"
            if (row["family"], row["probe"]) == (headline.get("family"), headline.get("probe"))
            else ""
        )
        cells = [_percent(test.get(column)) for column in COLUMNS]
        val_top1 = row["val"]["top1"] if row["val"] else None  # no validation split: nothing selected
        lines.append(
            f"| {row['family']} | {row['probe']}{marker} | {selected} | {_percent(val_top1)} | "
            + " | ".join(cells)
            + " |"
        )
    if payload.get("fewshot"):
        lines += ["", "| few-shot | method | test top-1 mean ± std (draws) |", "|---:|---|---|"]
        for item in payload["fewshot"]:
            lines.append(
                f"| {item['shots']}-shot | {item['method']} | {_percent(item['mean'])} ± {_percent(item['std'])} "
                f"({len(item['accuracies'])}) |"
            )
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, payload: dict[str, Any]) -> str:
    """Write ``results.json`` and ``results.md`` into ``out_dir``; returns the printed summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    protocol = payload["protocol"]
    header = (
        f"Encoder: {payload['encoder']['source']} ({payload['encoder']['which']}); data: {payload['data']}  \n"
        f"Protocol: pretraining {protocol['pretraining']}; splits {protocol['split_sizes']}; "
        f"selection {protocol.get('selection', 'on validation')}; test once per family; "
        f"labels used {protocol.get('labels_used', 'all')}; seed {protocol['seed']}  \n"
        f"Time: {payload['seconds']:.0f} s\n\n"
    )
    table = header + results_table(payload)
    text = json.dumps(payload, indent=2, default=str) + "\n"
    atomic_write(out_dir / "results.json", lambda temporary: temporary.write_text(text))
    atomic_write(out_dir / "results.md", lambda temporary: temporary.write_text(table))
    return table + f"\nwritten: {out_dir / 'results.json'}, {out_dir / 'results.md'}"
