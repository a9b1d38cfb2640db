"""FLOP formulas checked against PyTorch's own FLOP counter on a real training step."""
from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from minitransformer.flops import t5_flops_per_step
from minitransformer.models.config import T5Config
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
