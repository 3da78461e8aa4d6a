"""Group offloading gives the same numbers as a resident model, for the transformer and the text encoder."""

import pytest
import torch

from recammaster.models.configs import transformer_config
from recammaster.models.memory import place
from recammaster.models.text_encoder import umt5_config
from recammaster.models.transformer import ReCamMasterTransformer3DModel


def test_group_offloaded_transformer_matches_resident():
    torch.manual_seed(0)
    model = ReCamMasterTransformer3DModel(**transformer_config("tiny")).eval()
    inputs = (torch.randn(1, 16, 4, 4, 4), torch.tensor([300.0]), torch.randn(1, 5, 16), torch.randn(1, 2, 12))
    with torch.no_grad():
        expected = model(*inputs).sample
        offloaded = place(model, "cpu", "group-offload")
        assert any(hasattr(module, "_diffusers_hook") for module in model.blocks.modules())  # hooks attached
        torch.testing.assert_close(offloaded(*inputs).sample, expected, rtol=0, atol=0)


def test_group_offloaded_text_encoder_matches_resident():
    from transformers import UMT5EncoderModel

    torch.manual_seed(0)
    config = umt5_config(vocab_size=64, d_model=16, d_kv=4, num_heads=4, d_ff=32, num_layers=2)
    encoder = UMT5EncoderModel(config).eval()
    ids = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        expected = encoder(input_ids=ids).last_hidden_state
        actual = place(encoder, "cpu", "group-offload")(input_ids=ids).last_hidden_state
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown memory mode 'tiny'; choose one of: resident, group-offload"):
        place(torch.nn.Linear(2, 2), "cpu", "tiny")
