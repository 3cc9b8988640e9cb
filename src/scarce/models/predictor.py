"""The MIM-JEPA predictor (spec sec. 4.5).

A depth-3 :class:`MaskedTransformer` with the encoder's width, heads, FFN and dropouts over the
full token sequence of the context encoder; the position embedding is added again, and a head
``SiLU → LayerNorm(D, affine) → Linear(D, D, bias)`` maps to the target space.

The predictor owns a learned mask token (the 384-parameter vector in the spec's parity count of
5,457,408 at D=384, as the official code's transformer class always creates one). With
``masked_input="keep"`` (default, the spec's reading: the predictor runs over the context
encoder's full output sequence) it is unused; with ``"replace"`` (I-JEPA style) it replaces the
context tokens at masked positions, so the predictor sees only the visible tokens' outputs.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from scarce.models.encoder import EncoderConfig
from scarce.models.transformer import MaskedTransformer, init_linear_

PredictorInit = Literal["default", "reference"]
MaskedInput = Literal["keep", "replace"]


class Predictor(nn.Module):
    """``forward(context_tokens [B, N, D], keep_mask [B, N]) -> predictions [B, N, D]``.

    Args:
        encoder_config: the context encoder's configuration (width, heads, FFN, dropouts, grid).
        depth: number of predictor blocks (3 in the paper).
        masked_input: ``"keep"`` the context encoder's outputs at masked positions or
            ``"replace"`` them by the predictor's mask token.
        init: ``"default"`` rescales block ``l`` as block ``encoder_depth + l`` of the encoder
            would be and initialises the head's Linear like every other (trunc-normal 0.02);
            ``"reference"`` reproduces the official code, which rescales twice (once as ``l`` and
            once as ``encoder_depth + l``) and keeps PyTorch's default init for the head's Linear.
    """

    def __init__(
        self,
        encoder_config: EncoderConfig,
        depth: int = 3,
        init: PredictorInit = "default",
        masked_input: MaskedInput = "keep",
    ) -> None:
        super().__init__()
        if init not in ("default", "reference"):
            raise ValueError(f"predictor init must be 'default' or 'reference', got {init!r}")
        if masked_input not in ("keep", "replace"):
            raise ValueError(f"predictor masked_input must be 'keep' or 'replace', got {masked_input!r}")
        self.masked_input = masked_input
        dim = encoder_config.embed_dim
        self.init = init
        self.encoder_depth = encoder_config.depth
        self.transformer = MaskedTransformer(
            dim,
            encoder_config.grid_size,
            depth=depth,
            num_heads=encoder_config.num_heads,
            ffn=encoder_config.ffn,
            mlp_ratio=encoder_config.mlp_ratio,
            dropout_rate=encoder_config.dropout_rate,
            attention_dropout=encoder_config.attention_dropout,
            stochastic_depth_rate=encoder_config.stochastic_depth_rate,
            first_layer_id=encoder_config.depth + 1,
        )
        self.head = nn.Sequential(nn.SiLU(), nn.LayerNorm(dim), nn.Linear(dim, dim, bias=True))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.transformer.reset_parameters()
        if self.init == "reference":
            # the official code rescales the blocks a second time and leaves the head's Linear at
            # PyTorch's default init (about 3-4x larger first predictions than trunc-normal 0.02)
            for layer_id, block in enumerate(self.transformer.blocks, start=1):
                block.rescale_(layer_id)
            for module in self.head.modules():
                if isinstance(module, nn.Linear | nn.LayerNorm):
                    module.reset_parameters()
        else:
            self.head.apply(init_linear_)

    def forward(self, context_tokens: Tensor, keep_mask: Tensor, grid_size: tuple[int, int] | None = None) -> Tensor:
        """``context_tokens [B, N, D]``, ``keep_mask [B, N]`` bool -> ``[B, N, D]``."""
        replace_mask = keep_mask if self.masked_input == "replace" else None
        return self.head(self.transformer(context_tokens, replace_mask, grid_size))


def build_predictor(
    encoder_config: EncoderConfig,
    depth: int = 3,
    init: PredictorInit = "default",
    masked_input: MaskedInput = "keep",
) -> Predictor:
    """The MIM-JEPA predictor matching ``encoder_config``."""
    return Predictor(encoder_config, depth=depth, init=init, masked_input=masked_input)
