"""FLOP formulas checked against PyTorch's own FLOP counter on a real training step."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from minitransformer.flops import gpt_flops_per_token, mfu, t5_flops_per_step
from minitransformer.models.config import BertConfig, GPTConfig, T5Config
from minitransformer.models.t5 import T5


@pytest.mark.parametrize("kw", [dict(feed_forward="relu", tie_embeddings=True),
                                dict(feed_forward="gated-gelu", tie_embeddings=False, n_decoder_layers=3)])
def test_t5_flops_per_step_equals_counted_matmul_flops(kw):
    """Forward + backward of every matmul, as ``FlopCounterMode`` counts them, equals the closed form."""
    cfg = T5Config(vocab_size=97, d_model=24, d_kv=5, n_heads=3, d_ff=40, n_layers=2, dropout=0.0,
                   attention_backend="manual", **kw)
    model = T5(cfg)
    B, S, T = 3, 11, 7
    x = torch.randint(0, cfg.vocab_size, (B, S))
    y = torch.randint(0, cfg.vocab_size, (B, T))
    with FlopCounterMode(display=False) as counter:
        model(x, labels=y).loss.backward()
    assert counter.get_total_flops() == t5_flops_per_step(cfg, B, S, T)


def test_nonsense_sizes_are_refused():
    """A negative length gave a negative FLOP count, a BERT config a GPT count, a NaN speed a NaN MFU."""
    gpt, t5 = GPTConfig.preset("tiny"), T5Config.preset("tiny")
    for bad in (0, -5, 1.5):
        with pytest.raises(ValueError, match="seq_len"):
            gpt_flops_per_token(gpt, bad)
    with pytest.raises(ValueError, match="max_seq_len"):
        gpt_flops_per_token(gpt, gpt.max_seq_len + 1)
    with pytest.raises(TypeError, match="GPTConfig"):
        gpt_flops_per_token(BertConfig.preset("tiny"))
    with pytest.raises(ValueError, match="batch"):
        t5_flops_per_step(t5, -1, 128, 32)
    with pytest.raises(TypeError, match="T5Config"):
        t5_flops_per_step(gpt, 1, 8, 8)
    for args in ((-5.0, 1.0, 1.0), (float("nan"), 1.0, 1.0), (1.0, 1.0, float("inf")), (1.0, 1.0, 0.0)):
        with pytest.raises(ValueError):
            mfu(*args)
