"""Typed, validated run configuration (one pydantic model per section, unknown keys rejected).

A configuration is a YAML file (or a shipped preset name, see :func:`list_config_presets`) plus
``section.key=value`` overrides. The resolved configuration is saved in every run directory.

Sections: ``model`` (encoder + predictor), ``backbone`` (the transformer encoder or an S3L ResNet),
``masking``, ``data``, ``augmentation``, ``optim``, ``schedule``, ``run``, one section per method's own
options (``mimjepa``, ``contrastive``, ``supervised``) and ``stages`` (multi-stage pretraining).
Defaults are the MIM-JEPA paper's recipe (spec sec. 4) at the paper's size.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scarce.data.budget import LabelBudget
from scarce.errors import ConfigError, DataError
from scarce.methods import METHODS
from scarce.models.backbone import BACKBONES, BackboneKind
from scarce.models.encoder import EncoderConfig
from scarce.models.probes import HEADS
from scarce.models.resnet import ResNetConfig


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(EncoderConfig):
    """Encoder fields (see :class:`scarce.models.EncoderConfig`) plus the predictor's."""

    predictor_depth: int = Field(3, ge=1)
    predictor_init: Literal["default", "reference"] = "default"
    predictor_masked_input: Literal["keep", "replace"] = "keep"

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(**self.model_dump(exclude={"predictor_depth", "predictor_init", "predictor_masked_input"}))


class BackboneConfig(Section):
    """What network the method trains: the ``model`` section's transformer ``encoder`` (SCOTT or
    ViT tokens), or a torchvision ResNet (S3L, Cao & Wu 2021). ResNets read only ``model.img_size``
    (the evaluation resolution) from the ``model`` section."""

    kind: str = Field("encoder", description="a registered backbone: encoder | resnet18 | resnet50")
    cifar_stem: bool = Field(False, description="ResNets: 3x3 stride-1 stem without max-pool (32 px images)")
    drop_last_stage: bool = Field(False, description="ResNets: no layer4 (the S3L small architecture)")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        return BACKBONES.validate(kind)

    @property
    def spec(self) -> BackboneKind:
        """The registered :class:`~scarce.models.backbone.BackboneKind`."""
        return BACKBONES.get(self.kind)

    @property
    def is_resnet(self) -> bool:
        return self.spec.family == "resnet"


class MaskingConfig(Section):
    """Spec sec. 4.2."""

    kind: Literal["blockwise", "uniform", "multiblock"] = "blockwise"
    ratio: float = Field(0.6, gt=0, lt=1, description="fraction of masked tokens (blockwise, uniform)")
    placement: Literal["inside", "clipped"] = "inside"
    min_area: int | None = Field(None, ge=1, description="default: 16 at 14x14, scaled with the grid")
    target_blocks: int = Field(4, ge=1, description="multiblock (I-JEPA): predicted rectangles per image")
    target_scale: tuple[float, float] = Field((0.15, 0.2), description="multiblock: area share of a target block")
    target_aspect: tuple[float, float] = Field((0.75, 1.5), description="multiblock: height/width of a target block")
    context_scale: tuple[float, float] = Field(
        (0.85, 1.0), description="multiblock: area share of the context block (minus the targets)"
    )

    @model_validator(mode="after")
    def _ranges(self) -> MaskingConfig:
        for name in ("target_scale", "context_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high <= 1:
                raise ValueError(f"masking.{name} must satisfy 0 < low <= high <= 1, got {(low, high)}")
        if not 0 < self.target_aspect[0] <= self.target_aspect[1]:
            raise ValueError(f"masking.target_aspect must satisfy 0 < low <= high, got {self.target_aspect}")
        return self


class BudgetSection(Section):
    """The label-budget fields (:mod:`scarce.data.budget`) of a section: ``data`` of a run, and the
    settings of ``scarce evaluate`` (where an unset budget means the evaluated run's)."""

    labels_per_class: int | None = Field(
        None, ge=1, description="label budget: N labelled training images per class, the rest unlabelled"
    )
    label_fraction: float | None = Field(
        None, gt=0, le=1, description="label budget: this share of each class keeps its label (at least 1)"
    )
    val_per_class: int | None = Field(
        None, ge=1, description="under a budget: this many of each class's labels form the validation split"
    )
    label_seed: int | None = Field(
        None, ge=0, description="seed of the label-budget draw (default 0; same seed, same labelled ids)"
    )

    @model_validator(mode="after")
    def _one_budget(self) -> BudgetSection:
        try:
            self.budget  # noqa: B018 (validates the budget fields together)
        except DataError as error:
            raise ValueError(str(error)) from None
        return self

    @property
    def sets_budget(self) -> bool:
        """Whether any budget field is set."""
        fields = (self.labels_per_class, self.label_fraction, self.val_per_class, self.label_seed)
        return any(value is not None for value in fields)

    @property
    def budget(self) -> LabelBudget:
        """The label budget; inactive when no budget field is set."""
        return LabelBudget(self.labels_per_class, self.label_fraction, self.val_per_class, self.label_seed or 0)


class DataConfig(BudgetSection):
    """Where the images come from and how they are split (see ``scarce.data``)."""

    spec: str | None = Field(None, description="KIND:PATH of a registered data format (scarce.data.formats)")
    download: bool = Field(False, description="fetch a missing imagenette / cifar10 / flowers102 / pets37 dataset")
    protocol: Literal["inductive", "transductive"] = "inductive"
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
    split_seed: int = Field(0, ge=0)
    subset_per_class: int | None = Field(None, ge=1)
    subset_total: int | None = Field(None, ge=1)
    cache_short_side: int | None = Field(None, ge=8, description="resize decoded images once (folders)")
    num_workers: int | None = Field(None, ge=0, description="loader processes; default: 1 on CPU, 8 on GPU")

    @model_validator(mode="after")
    def _one_subset_rule(self) -> DataConfig:
        if self.subset_per_class is not None and self.subset_total is not None:
            raise ValueError("give subset_per_class or subset_total, not both")
        return self


class AugmentationConfig(Section):
    """The aligned two-view transform of spec sec. 4.1."""

    mode: Literal["none", "diff", "same"] = "diff"
    geometry: Literal["random_resized", "resize_random"] = Field(
        "random_resized",
        description="random_resized: RandomResizedCrop(crop_scale, crop_ratio); resize_random: short side to "
        "size/0.875, random crop, flip (the S3L fine-tuning view)",
    )
    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = Field(0.5, ge=0, le=1)
    photometric_p: float = Field(0.6, ge=0, le=1)
    jitter_p: float = Field(0.8, ge=0, le=1)
    brightness: float = Field(0.4, ge=0)
    contrast: float = Field(0.4, ge=0)
    saturation: float = Field(0.2, ge=0)
    hue: float = Field(0.1, ge=0, le=0.5)
    grayscale_p: float = Field(0.1, ge=0, le=1)
    blur_p: float = Field(0.3, ge=0, le=1)
    blur_kernel: int = Field(9, ge=1)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    crop_size: int | None = Field(
        None, ge=8, description="pretraining resolution (S3L); default model.img_size, the evaluation resolution"
    )


class OptimConfig(Section):
    """AdamW (spec sec. 4.7) or SGD with momentum (S3L's contrastive and fine-tuning recipes)."""

    name: Literal["adamw", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")

    lr: float = Field(5e-4, gt=0, description="peak learning rate")
    start_lr: float = Field(1e-6, ge=0)
    final_lr: float = Field(1e-5, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.04, ge=0)
    final_weight_decay: float = Field(0.4, ge=0)
    clip_grad: float | None = Field(None, gt=0, description="max gradient norm; none in the paper")
    accumulation_steps: int = Field(1, ge=1)
    lr_scaling: Literal["none", "linear"] = Field(
        "none", description="none (the paper): lr as given; linear: lr x run.batch_size / lr_reference_batch"
    )
    lr_reference_batch: int = Field(64, ge=1)

    def scaled(self, lr: float, batch_size: int) -> float:
        """A learning rate under the scaling rule for the global batch ``batch_size``."""
        return lr * batch_size / self.lr_reference_batch if self.lr_scaling == "linear" else lr


class ScheduleConfig(Section):
    """Per-iteration schedules (spec sec. 4.8)."""

    epochs: int = Field(300, ge=1)
    warmup_epochs: float = Field(40, ge=0)
    flat_fraction: float = Field(0.72, ge=0, le=1)
    ema_start: float = Field(0.996, ge=0, le=1)
    ema_end: float = Field(1.0, ge=0, le=1)
    ema_schedule: Literal["linear", "cosine"] = "linear"


class RunConfig(Section):
    """How the run is executed; none of these change the recipe's mathematics except seed/batch."""

    seed: int = Field(47, ge=0)
    batch_size: int = Field(
        64, ge=1, description="global batch per optimiser step: per-device x processes x accumulation"
    )
    drop_last: bool = True
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False
    checkpoint_every: int = Field(10, ge=1, description="epochs between numbered checkpoints")
    online_probe: bool = True
    probe_lr: float = Field(1e-3, gt=0)
    probe_weight_decay: float = Field(0.05, ge=0)
    tensorboard: bool = True


class MIMJEPAConfig(Section):
    """Options of MIM-JEPA beyond the paper's recipe (defaults: the paper)."""

    target_centering: Literal["none", "batch"] = Field(
        "none",
        description="batch: subtract the batch mean of the LayerNorm-ed targets (prevents collapse at small scale)",
    )
    target_layers: int = Field(
        1,
        ge=1,
        description="targets: 1 = the last block (paper); K > 1 = the mean of the last K blocks' outputs, each "
        "instance-normalised over the tokens (data2vec 2.0), then LayerNorm-ed",
    )
    context: Literal["full", "visible"] = Field(
        "full",
        description="full (paper): the context encoder runs over every token, masked ones as its mask token; "
        "visible (I-JEPA / MAE): over the visible tokens only, the predictor inserts its mask tokens",
    )


class ContrastiveConfig(Section):
    """MoCo v2, SimCLR and BYOL (S3L spec). The momentum of the key / target network follows
    ``schedule.ema_start`` -> ``schedule.ema_end``."""

    temperature: float = Field(0.2, gt=0, description="InfoNCE / NT-Xent temperature")
    queue_size: int = Field(4096, ge=1, description="MoCo: negatives kept (clamped to the training set size)")
    projection_hidden: int = Field(2048, ge=1)
    projection_dim: int = Field(128, ge=1)
    prediction_hidden: int = Field(4096, ge=1, description="BYOL predictor width")
    shuffle_bn_splits: int = Field(
        4, ge=1, description="MoCo's one-device shuffle-BN substitute: keys in this many shuffled BN groups"
    )


class StageConfig(Section):
    """One stage of a multi-stage pretraining (S3L): its epochs and resolution. The method's state
    (encoder, momentum encoder, heads, queue) carries over; optimiser and schedules restart."""

    epochs: int = Field(ge=1)
    crop_size: int | None = Field(None, ge=8, description="default: augmentation.crop_size")


class SupervisedConfig(Section):
    """The supervised baseline (``method: supervised``): backbone + head, end to end."""

    head: str = Field("simple", description="a registered head: simple | multihead | cross | linear")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    mixup_alpha: float = Field(0.0, ge=0, description="mixup with Beta(alpha, alpha) (S3L fine-tuning: 1.0)")
    warmup_last_stage_epochs: int = Field(
        0, ge=0, description="S3L: train only a re-added layer4 + head for this many epochs first"
    )
    init: str | None = Field(None, description="run dir / checkpoint / weights to fine-tune; None: random init")
    init_encoder: Literal["context", "target"] = "context"

    @field_validator("head")
    @classmethod
    def _known_head(cls, head: str) -> str:
        return HEADS.validate(head)


class FinetuneConfig(SupervisedConfig):
    """``scarce finetune`` (``method: finetune``): the supervised options plus the fine-tuning
    recipe of MAE / BEiT (layer-wise LR decay, MixUp + CutMix, an EMA of the weights) and LP-FT.
    Drop path is ``model.stochastic_depth_rate``; the EMA momentum follows ``schedule.ema_start`` ->
    ``schedule.ema_end``."""

    layer_decay: float = Field(
        1.0, gt=0, le=1, description="LR of layer l = lr x layer_decay^(L - l): per block (ViT) or stage (ResNet)"
    )
    cutmix_alpha: float = Field(
        0.0, ge=0, description="CutMix with Beta(alpha, alpha); with mixup, one of them per batch"
    )
    head_only_epochs: int = Field(
        0, ge=0, description="LP-FT: train only the head (encoder frozen) for this many epochs"
    )
    weight_ema: bool = Field(False, description="evaluate and export an EMA of the weights")


class SemisupConfig(FinetuneConfig):
    """``scarce semisup`` (``method: semisup``): self-training from a classifier run (``init``) on the
    labelled images and the unlabelled rest of the training split (FixMatch, Sohn et al. 2020;
    Semi-ViT, Cai et al. 2022). The fine-tuning options apply to the student."""

    init_encoder: Literal["context", "target"] = Field("context", description="unused: a classifier run has one")
    weight_ema: bool = Field(
        True,
        description="an EMA teacher gives the pseudo-labels (Semi-ViT) and is evaluated; false: the student (FixMatch)",
    )
    threshold: float = Field(
        0.7, gt=0, le=1, description="confidence above which a pseudo-label counts (Semi-ViT 0.7, FixMatch 0.95)"
    )
    unlabelled_weight: float = Field(1.0, ge=0, description="lambda_u: weight of the unlabelled loss")
    mu: int = Field(5, ge=1, description="unlabelled images per labelled image in a batch")
    pseudo_mixup: bool = Field(False, description="Semi-ViT's probabilistic pseudo-mixup of the confident images")
    randaugment_ops: int = Field(2, ge=0, description="strong view: RandAugment operations")
    randaugment_magnitude: int = Field(10, ge=0, le=30, description="strong view: RandAugment magnitude")
    erasing_p: float = Field(0.5, ge=0, le=1, description="strong view: RandomErasing probability")


class DistillConfig(SupervisedConfig):
    """``scarce distill`` (``method: distill``): a student learns a classifier run's softened predictions
    on every training image (Hinton et al. 2015; SimCLRv2). The student's architecture is the run's
    ``model`` / ``backbone``; ``init`` is unused (the student starts from random init)."""

    teacher: str | None = Field(None, description="the teacher classifier run (or classifier.safetensors)")
    temperature: float = Field(2.0, gt=0, description="softmax temperature T of the teacher and the student")
    labelled_weight: float = Field(0.0, ge=0, description="alpha: weight of cross-entropy on the labelled images")
    label_smoothing: float = Field(0.0, ge=0, lt=1)


class AuxConfig(Section):
    """An auxiliary self-supervised task for ``supervised`` and ``finetune`` (:mod:`scarce.methods.aux_tasks`)."""

    kind: Literal["none", "drloc", "rotation"] = Field(
        "none", description="drloc: dense relative localisation (Liu et al. 2021); rotation: predict 0/90/180/270"
    )
    weight: float = Field(0.1, ge=0, description="lambda: weight of the auxiliary loss")
    pairs: int = Field(64, ge=1, description="drloc: token pairs sampled per image")
    hidden: int = Field(512, ge=1, description="drloc: hidden width of the offset MLP")


class ScarceConfig(Section):
    """The whole configuration of a training run."""

    method: str = Field("mimjepa", description="a registered method: mimjepa | mocov2 | simclr | byol | supervised")
    model: ModelConfig = ModelConfig()
    backbone: BackboneConfig = BackboneConfig()
    masking: MaskingConfig = MaskingConfig()
    data: DataConfig = DataConfig()
    augmentation: AugmentationConfig = AugmentationConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    run: RunConfig = RunConfig()
    mimjepa: MIMJEPAConfig = MIMJEPAConfig()
    contrastive: ContrastiveConfig = ContrastiveConfig()
    supervised: SupervisedConfig = SupervisedConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    semisup: SemisupConfig = SemisupConfig()
    distill: DistillConfig = DistillConfig()
    aux: AuxConfig = AuxConfig()
    stages: tuple[StageConfig, ...] = ()

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        return METHODS.validate(method)

    def network_config(self) -> EncoderConfig | ResNetConfig:
        """The config of the backbone this run trains (see :func:`scarce.models.backbone.build_backbone`)."""
        return self.backbone.spec.from_sections(self.model, self.backbone)  # type: ignore[return-value]

    @property
    def crop_size(self) -> int:
        """The training resolution (S3L's pretraining resolution), default the evaluation one."""
        return self.augmentation.crop_size or self.model.img_size

    @model_validator(mode="after")
    def _consistent(self) -> ScarceConfig:
        method = METHODS.get(self.method)
        method.check_config(self)
        if not self.backbone.is_resnet and self.crop_size != self.model.img_size:
            raise ValueError(
                f"augmentation.crop_size {self.crop_size} != model.img_size {self.model.img_size}: a transformer "
                "encoder's token grid is fixed; other pretraining resolutions need a ResNet backbone"
            )
        for stage in self.stages:
            if not self.backbone.is_resnet and stage.crop_size not in (None, self.model.img_size):
                raise ValueError(f"stages: crop_size {stage.crop_size} needs a ResNet backbone")
        if not self.backbone.is_resnet and (self.backbone.cifar_stem or self.backbone.drop_last_stage):
            raise ValueError("backbone.cifar_stem and backbone.drop_last_stage apply to ResNet backbones only")
        if self.stages and not method.pretraining:
            raise ValueError(f"stages are for pretraining methods, not {self.method}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


_PRESET_PACKAGE = "scarce.configs"


def list_config_presets() -> list[str]:
    """Names of the YAML presets shipped in ``scarce/configs``."""
    files = resources.files(_PRESET_PACKAGE).iterdir()
    return sorted(path.name.removesuffix(".yaml") for path in files if path.name.endswith(".yaml"))


def _read_yaml(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        text = path.read_text(encoding="utf-8")
    elif name_or_path in list_config_presets():
        text = resources.files(_PRESET_PACKAGE).joinpath(f"{name_or_path}.yaml").read_text(encoding="utf-8")
    else:
        raise ConfigError(
            f"unknown config {name_or_path!r}: not a file, and not a preset ({', '.join(list_config_presets())})"
        )
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{name_or_path}: invalid YAML: {error}".replace("\n", " ")) from error
    if not isinstance(loaded, dict):
        raise ConfigError(f"{name_or_path}: a config must be a mapping of sections, got {type(loaded).__name__}")
    return loaded


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply ``section.key=value`` (value parsed as YAML) to a raw config mapping in place."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    dotted, value_text = override.split("=", 1)
    keys = dotted.strip().split(".")
    if not all(keys):
        raise ConfigError(f"override {override!r}: empty key")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError as error:
        raise ConfigError(f"override {override!r}: value is not valid YAML") from error
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def describe_validation_error(error: ValidationError) -> str:
    """Every problem of a pydantic validation error on one line, by dotted key."""
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "config"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key '{where}'")
        else:
            problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def build_config(raw: dict[str, Any]) -> ScarceConfig:
    """Validate a raw mapping; errors name every bad key."""
    try:
        return ScarceConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"invalid config: {describe_validation_error(error)}") from None


def load_config(name_or_path: str | None = None, overrides: list[str] | tuple[str, ...] = ()) -> ScarceConfig:
    """Load a preset name or YAML file (None: the paper's defaults) and apply overrides."""
    raw = _read_yaml(name_or_path) if name_or_path else {}
    for override in overrides:
        apply_override(raw, override)
    return build_config(raw)


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable ``key: old -> new`` lines between two config mappings."""
    lines = []
    for key in sorted(set(old) | set(new)):
        where = f"{prefix}{key}"
        before, after = old.get(key), new.get(key)
        if isinstance(before, dict) and isinstance(after, dict):
            lines.extend(config_differences(before, after, where + "."))
        elif before != after:
            lines.append(f"{where}: {before!r} -> {after!r}")
    return lines
