"""Extension points are registries: a new method is one class plus one registration (here, in this
file alone), config validation reads the names from the registries, unknown names are one-line
errors that list the known ones, and nothing falls through to a default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from scarce.cli import main
from scarce.commands import COMMANDS
from scarce.config import load_config
from scarce.data.transforms import normalize_batch
from scarce.errors import ConfigError
from scarce.eval.families import PROBE_FAMILIES
from scarce.methods import METHODS, Batch, BuildContext, Method, StepOutput, register_method
from scarce.models.backbone import BACKBONES, build_backbone
from scarce.models.layers import token_layer_norm
from scarce.models.probes import HEADS
from scarce.models.tokenizers import TOKENIZERS
from scarce.registry import Registry
from tests.helpers import IMAGENETTE, needs_data


class ToyColourMethod(Method):
    """A toy self-supervised method: from the tokens of one view, predict the mean colour of the
    other view. Enough to train an encoder through the generic loop."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(int(encoder.embed_dim), 3)

    @classmethod
    def from_config(cls, config, context: BuildContext) -> ToyColourMethod:  # type: ignore[no-untyped-def]
        del context
        return cls(build_backbone(config.network_config()))

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "head": self.head}

    def export_encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def training_step(self, batch: Batch) -> StepOutput:
        images = normalize_batch(batch.views[0])
        tokens = token_layer_norm(self.encoder(images))
        loss = (self.head(tokens.mean(dim=1)) - images.mean(dim=(2, 3))).pow(2).mean()
        return StepOutput(loss=loss, metrics={"loss": loss.detach()}, probe_tokens=tokens.detach())


@pytest.fixture
def toy_method() -> Iterator[str]:
    register_method("toy-colour")(ToyColourMethod)
    yield "toy-colour"
    METHODS.unregister("toy-colour")


@needs_data
def test_a_method_registered_in_a_test_file_pretrains_through_the_cli(
    toy_method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "toy"
    args = ["pretrain", "-c", "scott-tiny", "--data", f"npz:{IMAGENETTE}", "-o", str(run_dir), "--limit", "32"]
    args += ["--batch-size", "16", "--workers", "0", "--no-progress", "--stop-after-epoch", "1"]
    args += ["--set", f"method={toy_method}", "--set", "run.tensorboard=false", "--set", "run.online_probe=false"]
    assert main(args) == 0, capsys.readouterr().err
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in steps] == [1, 2]
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in steps)
    assert "toy-colour" in (run_dir / "config.yaml").read_text()


def test_config_takes_the_allowed_names_from_the_registries(toy_method: str) -> None:
    assert load_config("scott-tiny", [f"method={toy_method}"]).method == toy_method
    with pytest.raises(
        ConfigError, match=r"method: unknown method 'toy-colour'; known: byol, distill, finetune, mimjepa"
    ):
        METHODS.unregister(toy_method)
        load_config("scott-tiny", [f"method={toy_method}"])


@pytest.mark.parametrize(
    ("override", "known"),
    [
        ("method=dino", "byol, distill, finetune, mimjepa, mocov2, semisup, simclr, supervised"),
        ("backbone.kind=vgg", "encoder, resnet18, resnet50"),
        ("model.tokenizer=conv", "scott, vit"),
        ("supervised.head=mlp", "cross, linear, multihead, simple"),
    ],
)
def test_unknown_names_are_one_line_errors_listing_the_known_ones(override: str, known: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config("scott-tiny", [override])
    message = str(error.value)
    assert "\n" not in message
    assert f"known: {known}" in message


def test_every_registry_lists_its_built_ins() -> None:
    assert set(METHODS.names()) == {
        "byol",
        "distill",
        "finetune",
        "mimjepa",
        "mocov2",
        "semisup",
        "simclr",
        "supervised",
    }
    assert set(TOKENIZERS.names()) == {"scott", "vit"}
    assert set(BACKBONES.names()) == {"encoder", "resnet18", "resnet50"}
    assert set(HEADS.names()) == {"simple", "multihead", "cross", "linear"}
    assert set(PROBE_FAMILIES.names()) == {"attentive", "linear", "knn", "fewshot"}
    commands = {"pretrain", "supervised", "finetune", "semisup", "distill", "evaluate", "embed", "info", "predict"}
    commands |= {"export", "visualize", "report"}
    assert commands <= set(COMMANDS.names())


def test_a_registry_refuses_a_name_twice_and_nothing_falls_through() -> None:
    registry: Registry[int] = Registry("thing")
    registry.register("one")(1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("one")(2)
    with pytest.raises(ConfigError, match="unknown thing 'two'; known: one"):
        registry.get("two")
    with pytest.raises(TypeError, match="no registered backbone"):
        build_backbone(load_config("scott-tiny").optim)  # a config no backbone takes
