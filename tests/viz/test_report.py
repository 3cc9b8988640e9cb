"""``scarce visualize`` and ``scarce report`` on a short run on real images: the files, a page that
references nothing outside itself, a real headless Chromium that loads it, and bad input."""

from __future__ import annotations

import html.parser
import json
import os
import shutil
from pathlib import Path

import pytest

from scarce.cli import main
from scarce.config import load_config
from scarce.html_report import SECTIONS
from scarce.pretrain import pretrain
from tests.data.test_datasets import write_npz
from tests.helpers import IMAGENETTE, TINY_OVERRIDES, needs_data

DATA = f"npz:{IMAGENETTE}"


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-epoch scott-tiny run on 256 Imagenette images and a linear / kNN evaluation of it."""
    if not IMAGENETTE.exists():
        pytest.skip("real data not found")  # the imagenette fixture (needs_data) fails instead under CI=true
    root = tmp_path_factory.mktemp("report")
    run = root / "run"
    pretrain(load_config("scott-tiny", TINY_OVERRIDES), run, show_progress=False, log=lambda _: None)
    evaluation = root / "eval"
    code = main(
        ["evaluate", str(run), "--data", DATA, "--probes", "linear,knn", "--out", str(evaluation), "--no-progress"]
    )
    assert code == 0
    return run, evaluation


class _References(html.parser.HTMLParser):
    """Every src / href of a page, and the section ids."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[tuple[str, str]] = []
        self.sections: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.references.append((tag, value))
            if tag == "section" and name == "id" and value:
                self.sections.append(value)


@needs_data
def test_visualize_writes_every_picture(short_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = short_run
    out = tmp_path / "pictures"
    assert main(["visualize", str(run), "--data", DATA, "--out", str(out), "--images", "8", "--token", "5"]) == 0
    names = {path.stem for path in out.glob("*.png")}
    expected = {"pca_context", "pca_target", "attention_received", "attention_from_token_5", "views", "masks"}
    assert expected | {"neighbours", "embedding"} == names
    assert all(path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for path in out.glob("*.png"))


@pytest.fixture(scope="module")
def report_page(short_run: tuple[Path, Path]) -> Path:
    """The report of the short run with its evaluation and pictures (made once for the module)."""
    run, evaluation = short_run
    page = run.parent / "report.html"
    code = main(["report", str(run), "--eval", str(evaluation), "--data", DATA, "--images", "8", "--out", str(page)])
    assert code == 0
    return page


@needs_data
def test_report_is_one_self_contained_page(report_page: Path) -> None:
    page = report_page
    parser = _References()
    parser.feed(page.read_text())
    assert parser.sections == list(SECTIONS)
    images = [value for tag, value in parser.references if tag == "img"]
    assert len(images) >= 11  # curves + 8 pictures + confusion + per-class
    assert all(value.startswith("data:image/png;base64,") for value in images)
    others = [value for tag, value in parser.references if tag != "img"]
    assert all(value.startswith("#") for value in others), others
    assert not parser.tags & {"script", "link", "iframe", "object", "embed"}
    text = page.read_text()
    assert "pretraining fingerprint" in text and "Confusion matrix on the test split" in text
    assert "nothing was left out." in text  # a MIM-JEPA run with labelled data: every picture applies


@needs_data
def test_report_on_several_runs_and_without_pictures(short_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = short_run
    copy = tmp_path / "second"
    shutil.copytree(run, copy)
    page = tmp_path / "two.html"
    assert main(["report", str(run), str(copy), "--out", str(page)]) == 0
    text = page.read_text()
    assert "no --data given" in text and f"<h3>{copy.name}</h3>" in text and "<h3>run</h3>" in text


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    assert main(["report", str(empty), "--out", str(tmp_path / "r.html")]) == 2
    error = capsys.readouterr().err.strip()
    assert "has no epochs.jsonl" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "r.html").exists()
    (empty / "epochs.jsonl").write_text('{"epoch": 1, "loss": 1.0}\n')
    no_results = tmp_path / "eval"
    no_results.mkdir()
    assert main(["report", str(empty), "--eval", str(no_results), "--out", str(tmp_path / "r.html")]) == 2
    assert "has no results.json" in capsys.readouterr().err


@needs_data
def test_images_smaller_than_the_encoder_are_refused(
    short_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = short_run
    folder = tmp_path / "small"
    folder.mkdir()
    write_npz(folder / "small_train.npz", [6, 6], size=16)
    code = main(["visualize", str(run), "--data", f"npz:{folder}", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "smaller than the encoder's input (32 px)" in capsys.readouterr().err


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@needs_data
def test_report_loads_in_headless_chromium(report_page: Path) -> None:
    """file:// URL, no console error, every image decoded with a non-zero natural size, every section."""
    found = _chromium()
    if found is None:
        message = "chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true requires them", pytrace=False)
        pytest.skip(message)
    webdriver = pytest.importorskip("selenium.webdriver")
    page = report_page
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=found[1]), options=options)
    try:
        browser.get(page.resolve().as_uri())
        sizes = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        sections = browser.execute_script("return Array.from(document.querySelectorAll('section')).map(s => s.id);")
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    finally:
        browser.quit()
    assert len(sizes) >= 11 and all(done and width > 0 and height > 0 for done, width, height in sizes), sizes
    assert sections == list(SECTIONS)
    assert errors == [], json.dumps(errors)


@needs_data
def test_report_of_a_classifier_run_shows_its_own_curves_and_results(
    short_run: tuple[Path, Path], tmp_path: Path
) -> None:
    """A fine-tuned / supervised run keeps results.json beside its epochs.jsonl (train_top1, no rank)."""
    _, evaluation = short_run
    run = tmp_path / "classifier-run"
    run.mkdir()
    records = [{"epoch": epoch, "step": 3 * epoch, "loss": 2.0 / epoch, "train_top1": 0.1 * epoch} for epoch in (1, 2)]
    (run / "epochs.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    shutil.copy(evaluation / "results.json", run / "results.json")
    page = tmp_path / "classifier.html"
    assert main(["report", str(run), "--out", str(page)]) == 0
    text = page.read_text()
    assert "classifier-run (its own results)" in text and "Confusion matrix on the test split" in text
    assert "no environment.json" in text  # what is missing is said, not drawn broken
