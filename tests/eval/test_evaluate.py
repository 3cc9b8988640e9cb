"""Frozen evaluation: probe counts, loading errors, selection that never sees test data, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from scarce.cli import main
from scarce.errors import CheckpointError
from scarce.eval.encoders import load_encoder, random_encoder
from scarce.evaluate import EvaluationConfig, evaluate
from scarce.models import preset_config
from scarce.models.probes import build_probe


@pytest.mark.parametrize(("kind", "expected"), [("simple", 39_655), ("multihead", 338_026), ("cross", 1_811_430)])
def test_probe_parameter_counts_match_spec(kind: str, expected: int) -> None:
    probe = build_probe(kind, 384, 102)  # type: ignore[arg-type]
    assert sum(p.numel() for p in probe.parameters()) == expected
    assert probe(torch.randn(2, 196, 384)).shape == (2, 102)


def _blob_npz_dir(root: Path, test_seed: int, size: int = 32) -> Path:
    """Train/val/test npz files of 4 classes of coloured images (learnable from pixels)."""
    root.mkdir(parents=True, exist_ok=True)
    palette = np.array([[220, 30, 30], [30, 220, 30], [30, 30, 220], [220, 220, 30]], dtype=np.float32)

    def make(count: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        labels = np.arange(count) % 4
        noise = rng.normal(0, 40, size=(count, size, size, 3))
        images = np.clip(palette[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
        return {"x": images, "y": labels.astype(np.int64), "classes": np.array(["r", "g", "b", "y"])}

    np.savez(root / "blobs_train.npz", **make(96, 0))
    np.savez(root / "blobs_val.npz", **make(32, 1))
    np.savez(root / "blobs_test.npz", **make(32, test_seed))
    return root


FAST = EvaluationConfig(
    epochs=2, warmup_epochs=0.5, batch_size=32, fewshot_shots=(1, 2), fewshot_draws=2, knn_ks=(5, 10)
)


def test_selection_never_touches_test_data(tmp_path: Path) -> None:
    """Replacing every test image and label changes no selection and no validation number."""
    loaded = random_encoder(preset_config("scott-tiny"), seed=0)
    first = evaluate(
        loaded, f"npz:{_blob_npz_dir(tmp_path / 'a', test_seed=2)}", FAST, tmp_path / "out-a", log=lambda _: None
    )
    second = evaluate(
        loaded, f"npz:{_blob_npz_dir(tmp_path / 'b', test_seed=99)}", FAST, tmp_path / "out-b", log=lambda _: None
    )
    for row_a, row_b in zip(first.rows, second.rows, strict=True):
        assert row_a["selected"] == row_b["selected"]
        assert row_a["val"] == row_b["val"]
    assert first.headline is not None and second.headline is not None
    assert (first.headline["family"], first.headline["probe"]) == (second.headline["family"], second.headline["probe"])
    assert [row["test"] for row in first.rows] != [row["test"] for row in second.rows]  # test data did change
    tested = [row for row in first.rows if row["test"] is not None]
    assert {row["family"] for row in tested} == {"attentive", "linear", "knn"}  # once per family
    assert sum(row["family"] == "attentive" for row in tested) == 1
    results = json.loads((tmp_path / "out-a" / "results.json").read_text())
    assert results["protocol"]["split_sizes"] == {"train": 96, "val": 32, "test": 32}
    assert (tmp_path / "out-a" / "results.md").read_text().count("| attentive |") == 3


def test_loading_errors_are_loud(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such run directory"):
        load_encoder(tmp_path / "missing")
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(CheckpointError, match=r"neither encoder\.safetensors nor checkpoints/last\.pt"):
        load_encoder(tmp_path / "empty-run")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_encoder(corrupt)
    encoder = random_encoder(preset_config("scott-tiny")).encoder
    state = {key: value.contiguous() for key, value in encoder.state_dict().items()}
    metadata = {"encoder_config": encoder.config.model_dump_json()}
    partial = dict(list(state.items())[:-1])
    save_file(partial, str(tmp_path / "partial.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="missing 1 keys"):
        load_encoder(tmp_path / "partial.safetensors")
    save_file(state, str(tmp_path / "no-meta.safetensors"))
    with pytest.raises(CheckpointError, match="no encoder_config"):
        load_encoder(tmp_path / "no-meta.safetensors")
    save_file(state, str(tmp_path / "good.safetensors"), metadata=metadata)
    loaded = load_encoder(tmp_path / "good.safetensors")
    assert all(torch.equal(loaded.encoder.state_dict()[k], v) for k, v in state.items())


def test_cli_evaluate_and_embed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = f"npz:{_blob_npz_dir(tmp_path / 'data', test_seed=2)}"
    args = [
        "evaluate",
        "--random-init",
        "-c",
        "scott-tiny",
        "--data",
        data,
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "ev"),
    ]
    assert main([*args, "--probes", "linear,knn", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| linear |" in out and "| knn |" in out
    written = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert written["encoder"]["which"] == "random-init"
    assert written["settings"]["precision"] == "fp32"  # the default on every device, recorded
    assert main([*args, "--probes", "knn", "--precision", "bf16", "--no-progress"]) == 0
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["settings"]["precision"] == "bf16"
    encoder = random_encoder(preset_config("scott-tiny")).encoder
    weights = tmp_path / "enc.safetensors"
    save_file(
        {k: v.contiguous() for k, v in encoder.state_dict().items()},
        str(weights),
        metadata={"encoder_config": encoder.config.model_dump_json()},
    )
    for suffix in (".npz", ".safetensors"):
        target = tmp_path / f"emb{suffix}"
        assert main(["embed", str(weights), "--data", data, "--out", str(target), "--tokens"]) == 0
    embedded = np.load(tmp_path / "emb.npz")
    assert embedded["features"].shape == (160, 64) and embedded["tokens"].shape == (160, 64, 64)
    assert list(embedded["split"][:1]) == ["train"] and embedded["labels"].shape == (160,)
    assert main(["embed", str(weights), "--data", data, "--out", str(tmp_path / "emb.txt")]) == 2
    assert main(["evaluate", str(tmp_path / "nothing"), "--data", data]) == 2
    assert (
        main(["evaluate", "--random-init", "-c", "scott-tiny", "--data", data, "--probes", "linearr", "--out", "x"])
        == 2
    )
