"""``html_report``: one self-contained HTML page about one or several runs (``scarce report``).

The page holds each run's configuration, environment, data fingerprints and split sizes, the
training curves of all runs on shared axes (collapse warnings marked), the pictures of
:func:`scarce.visualize.visualize` when a dataset is given, and for every evaluation its results
table, confusion matrix and per-class accuracy. Images are inlined as ``data:`` URIs; the page has
no script and references nothing outside itself, so it opens from a ``file://`` URL offline.
Parts that are missing are left out with a note in the page, never as a broken image.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scarce.engine.checkpoint import atomic_write
from scarce.errors import CheckpointError
from scarce.eval.report import COLUMNS
from scarce.viz import figures
from scarce.viz.curves import collapsed_epochs, curve_keys, curves_figure, read_jsonl

SECTIONS = ("runs", "curves", "pictures", "evaluations", "notes")
"""The ``id`` of every section of the page, in order (each is always present)."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.note { color: #8a5a00; } .warning { color: #b00020; font-weight: bold; }
nav a { margin-right: 1em; }
"""


@dataclass
class Page:
    """The parts of the page as HTML fragments, one list per section, and the notes."""

    parts: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in SECTIONS})
    notes: list[str] = field(default_factory=list)

    def image(self, section: str, png: bytes, caption: str, alt: str) -> None:
        data = base64.b64encode(png).decode("ascii")
        self.parts[section].append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def note(self, text: str) -> None:
        self.notes.append(text)


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>" for key, value in rows)
    return f"<table>{body}</table>"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {str(error).splitlines()[0]}") from None


def _run_part(run: Path, page: Page) -> None:
    environment = _read_json(run / "environment.json") if (run / "environment.json").exists() else {}
    epochs = read_jsonl(run / "epochs.jsonl")
    data = environment.get("data", {})
    sizes = data.get("sizes", {})
    fingerprints = data.get("fingerprints", {})
    facts = [
        ("command", str(environment.get("command", "–"))),
        ("epochs recorded", str(len(epochs))),
        ("training time", f"{sum(record.get('seconds', 0.0) for record in epochs) / 60:.1f} min"),
        (
            "machine",
            f"{environment.get('processor', '–')}, {environment.get('cpu_count', '?')} CPUs, "
            f"device {environment.get('training_device', environment.get('device', '–'))}",
        ),
        (
            "software",
            f"scarce {environment.get('scarce', '?')}, torch {environment.get('torch', '?')}, "
            f"commit {str(environment.get('git_commit', '–'))[:10]}",
        ),
        ("data", str(data.get("spec", "–"))),
        ("split sizes", ", ".join(f"{name} {size}" for name, size in sizes.items()) or "–"),
        ("pretraining fingerprint", str(environment.get("pretrain_fingerprint", "–"))),
    ]
    facts += [(f"fingerprint {name}", value) for name, value in fingerprints.items()]
    if not environment:
        page.note(f"{run.name}: no environment.json, machine and data facts are left out")
    config = (run / "config.yaml").read_text() if (run / "config.yaml").exists() else None
    block = f"<h3>{html.escape(run.name)}</h3>{_table(facts)}"
    if config is not None:
        block += f"<details><summary>configuration</summary><pre>{html.escape(config)}</pre></details>"
    collapsed = collapsed_epochs(epochs)
    if collapsed:
        block += (
            f'<p class="warning">collapse warning: effective rank below a quarter of epoch 1\'s '
            f"from epoch {collapsed[0]} ({len(collapsed)} epochs)</p>"
        )
    page.parts["runs"].append(block)


def _evaluation_part(results_path: Path, title: str, page: Page) -> None:
    payload = _read_json(results_path)
    if not payload.get("results"):
        raise CheckpointError(f"{results_path} holds no results")
    classes = payload.get("protocol", {}).get("splits", {}).get("classes") or []
    header = "".join(f"<th>{name}</th>" for name in ("family", "probe", "selected", "val top-1", *COLUMNS))
    rows = []
    for row in payload["results"]:
        test = row.get("test") or {}
        val = row.get("val") or {}
        selected = ", ".join(f"{key} {value}" for key, value in row.get("selected", {}).items())
        cells = [row["family"], row["probe"], selected]
        numbers = [val.get("top1"), *(test.get(column) for column in COLUMNS)]
        rows.append(
            "<tr>"
            + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells)
            + "".join(f'<td class="num">{"–" if v is None else f"{100 * v:.1f}"}</td>' for v in numbers)
            + "</tr>"
        )
    page.parts["evaluations"].append(
        f"<h3>{html.escape(title)}</h3><p>test split scored once per family; metrics in %.</p>"
        f"<table><tr>{header}</tr>{''.join(rows)}</table>"
    )
    headline = payload.get("headline") or {}
    chosen = next(
        (r for r in payload["results"] if (r["family"], r["probe"]) == (headline.get("family"), headline.get("probe"))),
        next((r for r in payload["results"] if r.get("test")), None),
    )
    test = (chosen or {}).get("test") or {}
    if "confusion" not in test:
        page.note(f"{title}: no test confusion matrix recorded, its pictures are left out")
        return
    names = classes or [str(index) for index in range(len(test["confusion"]))]
    label = f"{chosen['family']} / {chosen['probe']}" if chosen else ""
    page.image(
        "evaluations",
        figures.save_png(figures.confusion_figure(test["confusion"], names, f"test confusion, {label}")),
        f"Confusion matrix on the test split of {label} (rows: true class).",
        f"confusion matrix {title}",
    )
    if "per_class_accuracy" not in test:
        page.note(f"{title}: no per-class accuracy recorded, its picture is left out")
        return
    page.image(
        "evaluations",
        figures.save_png(figures.per_class_figure(test["per_class_accuracy"], names, f"per-class accuracy, {label}")),
        f"Per-class test accuracy of {label}.",
        f"per-class accuracy {title}",
    )


def run_labels(run_dirs: list[Path]) -> dict[Path, str]:
    """A distinct label per run for the curves: its folder name, or its path where names repeat."""
    names = [run.name for run in run_dirs]
    return {run: run.name if names.count(run.name) == 1 else str(run) for run in run_dirs}


def html_report(
    runs: list[str | Path],
    out: str | Path,
    *,
    evaluations: list[str | Path] | None = None,
    data_spec: str | None = None,
    num_images: int = 16,
    log: Callable[[str], None] = print,
) -> Path:
    """Write the page for ``runs`` (run directories) to ``out``; return its path.

    ``evaluations``: directories holding a ``results.json`` (from ``scarce evaluate --out``); a
    run's own ``results.json`` is included too. ``data_spec``: images for the pictures of the
    first run (left out with a note without it).
    """
    started = time.perf_counter()
    run_dirs = [Path(run) for run in runs]
    for run in run_dirs:
        if not run.is_dir():
            raise CheckpointError(f"run directory not found: {run}")
    result_files = [(Path(directory) / "results.json", str(directory)) for directory in evaluations or []]
    for path, _ in result_files:  # every input is checked before anything is drawn
        if not path.exists():
            raise CheckpointError(f"evaluation directory {path.parent} has no results.json")
    result_files += [(run / "results.json", f"{run.name} (its own results)") for run in run_dirs]
    labels = run_labels(run_dirs)
    page = Page()
    epochs = {labels[run]: read_jsonl(run / "epochs.jsonl") for run in run_dirs}
    for run in run_dirs:
        _run_part(run, page)
    steps = {labels[run]: read_jsonl(run / "metrics.jsonl") for run in run_dirs if (run / "metrics.jsonl").exists()}
    if not curve_keys(epochs):
        raise CheckpointError(f"{run_dirs[0]}/epochs.jsonl holds no numeric record to draw")
    page.image(
        "curves",
        figures.save_png(curves_figure(epochs, steps)),
        "Per-epoch records of every run on shared axes; learning rate and EMA momentum per step. "
        "Red crosses: effective rank below a quarter of epoch 1's (collapse warning).",
        "training curves",
    )
    if data_spec is None:
        page.note("no --data given: the pictures of what the encoder learned are left out")
    else:
        from scarce.visualize import visualize

        with tempfile.TemporaryDirectory() as folder:
            pictures = visualize(run_dirs[0], data_spec, folder, num_images=num_images, log=lambda _: None)
            for name, path in pictures.files.items():
                page.image("pictures", path.read_bytes(), pictures.captions[name], name)
            for note in pictures.notes:
                page.note(note)
    for path, title in result_files:
        if path.exists():
            _evaluation_part(path, title, page)
    if not page.parts["evaluations"]:
        page.note("no evaluation results: run scarce evaluate RUN --out DIR and pass --eval DIR")
    document = _document(page, [run.name for run in run_dirs])
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out_path, lambda temporary: temporary.write_text(document, encoding="utf-8"))
    log(f"wrote {out_path} ({len(document) / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    return out_path


def _document(page: Page, names: list[str]) -> str:
    titles = {
        "runs": "Runs",
        "curves": "Training curves",
        "pictures": "What the encoder learned",
        "evaluations": "Evaluations",
        "notes": "Notes",
    }
    page.parts["notes"] = [
        "<ul>" + "".join(f'<li class="note">{html.escape(note)}</li>' for note in page.notes) + "</ul>"
        if page.notes
        else "<p>nothing was left out.</p>"
    ]
    for name in SECTIONS:
        if not page.parts[name]:
            page.parts[name].append('<p class="note">nothing here (see the notes).</p>')
    nav = "".join(f'<a href="#{name}">{titles[name]}</a>' for name in SECTIONS)
    sections = "".join(
        f'<section id="{name}"><h2>{titles[name]}</h2>{"".join(page.parts[name])}</section>' for name in SECTIONS
    )
    title = html.escape("scarce report: " + ", ".join(names))
    generated = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>{title}</h1><p>generated {generated}</p>"
        f"<nav>{nav}</nav>{sections}</body></html>\n"
    )
