"""The three families, each one readable file built from ``minitransformer.nn``.

- ``gpt.py``: causal decoder (GPT-2/3).
- ``bert.py``: bidirectional encoder with MLM/NSP heads (BERT, RoBERTa, ELECTRA).
- ``t5.py``: encoder-decoder with relative position bias (T5 v1.0 / v1.1).
"""
from minitransformer.models.bert import Bert
from minitransformer.models.config import BertConfig, GPTConfig, T5Config
from minitransformer.models.gpt import GPT
from minitransformer.models.t5 import T5

__all__ = ["GPTConfig", "BertConfig", "T5Config", "GPT", "Bert", "T5"]
