"""minitransformer: an educational Transformer library in pure PyTorch.

One set of shared blocks (``minitransformer.nn``) and three model families built on them:
BERT-style encoders, GPT-style decoders and T5-style encoder-decoders::

    import minitransformer as mt
    cfg = mt.GPTConfig.preset("tiny")
    gpt = mt.GPT(cfg)
    mt.count_parameters(mt.GPTConfig.preset("gpt3-175b"))   # 174_604_259_328, nothing allocated
"""
from __future__ import annotations

from minitransformer.accounting import MemoryEstimate, count_parameters, estimate_memory
from minitransformer.interop.hf import from_hf, to_hf_model, to_hf_state_dict
from minitransformer.models import GPT, T5, Bert, BertConfig, GPTConfig, T5Config

__version__ = "0.1.0"

__all__ = [
    "GPTConfig", "BertConfig", "T5Config", "GPT", "Bert", "T5",
    "count_parameters", "estimate_memory", "MemoryEstimate", "from_hf", "to_hf_state_dict", "to_hf_model",
]
