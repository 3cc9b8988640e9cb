"""Models: the SCOTT and ViT tokenizers, the transformer encoder, the MIM-JEPA predictor."""

from scarce.models.encoder import Encoder, EncoderConfig, build_encoder, count_parameters
from scarce.models.predictor import Predictor, build_predictor
from scarce.models.registry import ENCODER_PRESETS, create_encoder, list_presets, preset_config
from scarce.models.tokenizers import MaxBlurPool2d, PatchEmbedTokenizer, SCOTTTokenizer
from scarce.models.transformer import Attention, Block, MaskedTransformer, sincos_pos_embed_2d

__all__ = [
    "ENCODER_PRESETS",
    "Attention",
    "Block",
    "Encoder",
    "EncoderConfig",
    "MaskedTransformer",
    "MaxBlurPool2d",
    "PatchEmbedTokenizer",
    "Predictor",
    "SCOTTTokenizer",
    "build_encoder",
    "build_predictor",
    "count_parameters",
    "create_encoder",
    "list_presets",
    "preset_config",
    "sincos_pos_embed_2d",
]
