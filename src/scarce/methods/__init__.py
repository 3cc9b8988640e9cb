"""Training methods: each is one module that registers its :class:`Method` subclass in
:data:`METHODS` with :func:`register_method`. Importing this package registers the built-ins."""

from scarce.methods.base import METHODS, Batch, BuildContext, Method, StepOutput, register_method
from scarce.methods.byol import BYOL
from scarce.methods.distill import Distill
from scarce.methods.finetune import FineTune
from scarce.methods.mimjepa import MIMJEPA, masked_smooth_l1
from scarce.methods.moco import MoCoV2
from scarce.methods.semisup import SemiSupervised
from scarce.methods.simclr import SimCLR
from scarce.methods.supervised import Supervised

__all__ = [
    "BYOL",
    "METHODS",
    "MIMJEPA",
    "Batch",
    "BuildContext",
    "Distill",
    "FineTune",
    "Method",
    "MoCoV2",
    "SemiSupervised",
    "SimCLR",
    "StepOutput",
    "Supervised",
    "masked_smooth_l1",
    "register_method",
]
