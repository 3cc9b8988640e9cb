"""Time ``scarce visualize`` (16 images) and ``scarce report`` on a real run, and take the README's
screenshot of the report in headless Chromium.

    python -m benchmarks.visualize_report [--run DIR] [--eval DIR]

Defaults: the README's main job (``python -m benchmarks.main_job``: scott-cpu-96, 30 epochs on the
npz copy of Imagenette) in ``$SCARCE_BENCHMARK_RUNS/main-job`` and its evaluation in
``$SCARCE_BENCHMARK_RUNS/main-job-eval`` (``scarce evaluate RUN --out DIR``; made when missing).
The committed outputs show the main job of the recipe before the MIM-JEPA study's winner became the
preset's default. Writes ``results/visualize_report.{json,md}`` and ``docs/images/report.png`` (the top of the page,
900 px wide). Run it on an idle machine: the seconds are wall-clock.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import IMAGENETTE, run_header, write_results

RUNS = Path(os.environ.get("SCARCE_BENCHMARK_RUNS", "/work/runs"))
DATA = f"npz:{IMAGENETTE}"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "images" / "report.png"


def screenshot(page: Path, out: Path, width: int = 1200, height: int = 2200) -> None:
    """The top ``height`` px of ``page`` at ``width`` px, saved at 900 px wide with 128 colours."""
    from PIL import Image
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"  # Debian's; no download by Selenium Manager
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver") or "chromedriver")
    browser = webdriver.Chrome(service=service, options=options)
    try:
        browser.get(page.resolve().as_uri())
        with tempfile.TemporaryDirectory() as folder:
            raw = Path(folder) / "page.png"
            browser.save_screenshot(str(raw))
            image = Image.open(raw).convert("RGB")
    finally:
        browser.quit()
    image = image.resize((900, round(image.height * 900 / image.width)), Image.Resampling.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=RUNS / "main-job")
    parser.add_argument("--eval", type=Path, default=RUNS / "main-job-eval")
    args = parser.parse_args()
    from scarce.html_report import html_report
    from scarce.visualize import visualize

    if not (args.eval / "results.json").exists():
        probes = ["--probes", "linear,knn,attentive", "--epochs", "20"]
        command = ["scarce", "evaluate", str(args.run), "--data", DATA, *probes, "--out", str(args.eval)]
        subprocess.run([*command, "--no-progress"], check=True)
    with tempfile.TemporaryDirectory() as folder:
        pictures = visualize(args.run, DATA, folder, num_images=16)
        started = time.perf_counter()
        page = html_report([args.run], Path(folder) / "report.html", evaluations=[args.eval], data_spec=DATA)
        report_seconds = time.perf_counter() - started
        screenshot(page, SCREENSHOT)
    payload = {
        **run_header(),
        "run": str(args.run),
        "visualize_seconds": pictures.seconds,
        "visualize_timings": pictures.timings,
        "report_seconds": report_seconds,
    }
    lines = [
        f"`scarce visualize` of `{args.run.name}` on Imagenette, 16 images: {pictures.seconds:.1f} s in all.",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *(f"| {name} | {seconds:.1f} |" for name, seconds in pictures.timings.items()),
        "",
        "The neighbours' gallery is the whole training split (pooled features of every image) and the 2-D map "
        "is a t-SNE of 500 held-out images: they take most of the time; the pictures of the 16 shown images take "
        "the rest.",
        "",
        f"`scarce report` of the same run with its evaluation and the pictures: {report_seconds:.1f} s "
        "(it makes the pictures again). Screenshot: `docs/images/report.png`.",
    ]
    write_results("visualize_report", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
