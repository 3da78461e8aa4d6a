"""The networks: the ReCamMaster transformer, the Wan VAE and the umT5 text encoder, and their weights.

Each is a library class (diffusers' ``WanTransformer3DModel`` subclass, diffusers' ``AutoencoderKLWan``,
transformers' ``UMT5EncoderModel``) loaded strictly from the files users download, with exports back to
the official layouts. Importing this package imports torch, diffusers and transformers.
"""

from recammaster.models.configs import TRANSFORMER_CONFIGS, transformer_config
from recammaster.models.memory import MEMORY_MODES, place
from recammaster.models.text_encoder import (
    DEFAULT_NEGATIVE_PROMPT,
    UMT5_XXL_CONFIG,
    encode_prompt,
    load_tokenizer,
    load_umt5_encoder,
)
from recammaster.models.transformer import ReCamMasterTransformer3DModel
from recammaster.models.vae import WAN_VAE_CONFIG, decode_latents, encode_video, load_wan_vae
from recammaster.models.weights import load_transformer, official_state_dict, save_official_checkpoint

__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "MEMORY_MODES",
    "TRANSFORMER_CONFIGS",
    "UMT5_XXL_CONFIG",
    "WAN_VAE_CONFIG",
    "ReCamMasterTransformer3DModel",
    "decode_latents",
    "encode_prompt",
    "encode_video",
    "load_tokenizer",
    "load_transformer",
    "load_umt5_encoder",
    "load_wan_vae",
    "official_state_dict",
    "place",
    "save_official_checkpoint",
    "transformer_config",
]
