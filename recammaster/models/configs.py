"""Named model sizes: the constructor arguments of ``ReCamMasterTransformer3DModel`` per size.

``wan2.1-t2v-1.3b`` is the base of the released ReCamMaster checkpoint; ``wan2.1-t2v-14b`` applies the
same recipe to the larger Wan (spec §1.1; no ReCamMaster weights exist for it). ``embedded`` is the small
model trained here from scratch (7.4 M parameters, 0.6 s per forward at 128x128 x 81 frames on two CPU
cores; its text comes from a 128-wide umT5); ``embedded-4x`` is that model with (1, 4, 4) patches, for a VAE whose
latents are 4x smaller than the frames instead of 8x, and ``embedded-4x4c`` the same for such a VAE with 4 latent
channels instead of 16 (a patch is then 64 numbers, as the 8x layout's 2x2 patches of 16 channels are), and
``embedded-4x4c-deep`` that with 12 blocks instead of 6; ``embedded-fine`` has 2x2 patches over those 4
channels, four times the tokens a frame, for smaller frames (96x96: 12x12 tokens a frame, 3.5 s per forward on two
CPU cores). ``tiny`` builds in milliseconds on a CPU, for tests.
"""

from __future__ import annotations

from typing import Any

from recammaster.errors import ReCamMasterError

_WAN_SHARED: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
}

_EMBEDDED: dict[str, Any] = {
    **_WAN_SHARED,
    "num_attention_heads": 4,
    "attention_head_dim": 64,
    "text_dim": 128,
    "ffn_dim": 1024,
    "num_layers": 6,
}

TRANSFORMER_CONFIGS: dict[str, dict[str, Any]] = {
    "wan2.1-t2v-1.3b": {**_WAN_SHARED, "num_attention_heads": 12, "ffn_dim": 8960, "num_layers": 30},
    "wan2.1-t2v-14b": {**_WAN_SHARED, "num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40},
    "embedded": _EMBEDDED,
    # with a VAE of 4x latents (32x32 at 128x128), 4x4 patches keep the 8x layout's tokens (8x8 a frame)
    "embedded-4x": {**_EMBEDDED, "patch_size": (1, 4, 4)},
    "embedded-4x4c": {**_EMBEDDED, "patch_size": (1, 4, 4), "in_channels": 4, "out_channels": 4},
    # twice the depth: is the embedded model at its capacity? (configs/embedded-4x4c-deep.yaml)
    "embedded-4x4c-deep": {**_EMBEDDED, "patch_size": (1, 4, 4), "in_channels": 4, "out_channels": 4, "num_layers": 12},
    # tokens of 8x8 pixels instead of 16x16: small enough to carry a walker (configs/embedded-fine.yaml)
    "embedded-fine": {**_EMBEDDED, "patch_size": (1, 2, 2), "in_channels": 4, "out_channels": 4},
    "tiny": {
        **_WAN_SHARED,
        "num_attention_heads": 2,
        "attention_head_dim": 12,
        "text_dim": 16,
        "freq_dim": 16,
        "ffn_dim": 32,
        "num_layers": 2,
    },
}


def transformer_config(name: str) -> dict[str, Any]:
    """A copy of a named transformer config; raises naming the choices for an unknown name."""
    if name not in TRANSFORMER_CONFIGS:
        raise ReCamMasterError(f"unknown model config {name!r}; choose one of: {', '.join(TRANSFORMER_CONFIGS)}")
    return dict(TRANSFORMER_CONFIGS[name])
