"""Training methods: small classes declaring modules, EMA pairs and one step."""

from scarce.methods.base import Batch, Method, StepOutput
from scarce.methods.mimjepa import MIMJEPA, masked_smooth_l1

__all__ = ["MIMJEPA", "Batch", "Method", "StepOutput", "masked_smooth_l1"]
