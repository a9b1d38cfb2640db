"""The shared building blocks. They know nothing of BERT, GPT or T5: each family arranges them."""
from minitransformer.nn.attention import (
    KVCache,
    MultiHeadAttention,
    attention,
    causal_mask,
    check_padding_mask,
    padding_bias,
)
from minitransformer.nn.dropout import Dropout, dropout
from minitransformer.nn.embeddings import (
    LearnedPositionalEmbedding,
    SegmentEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    check_ids,
    padded_vocab_logits,
    resize_vocab_rows,
    vocab_logits,
)
from minitransformer.nn.feedforward import FeedForward
from minitransformer.nn.layers import DecoderCache, DecoderLayer, EncoderLayer
from minitransformer.nn.norms import LayerNorm, RMSNorm, make_norm
from minitransformer.nn.position import (
    ALiBi,
    RelativePositionBias,
    RotaryEmbedding,
    alibi_slopes,
    apply_rotary,
    relative_position_bucket,
)

__all__ = [
    "MultiHeadAttention", "attention", "causal_mask", "padding_bias", "check_padding_mask", "KVCache",
    "TokenEmbedding", "LearnedPositionalEmbedding", "SinusoidalPositionalEncoding", "SegmentEmbedding", "check_ids",
    "vocab_logits", "padded_vocab_logits", "resize_vocab_rows",
    "FeedForward", "EncoderLayer", "DecoderLayer", "DecoderCache", "LayerNorm", "RMSNorm", "make_norm",
    "RelativePositionBias", "relative_position_bucket", "RotaryEmbedding", "apply_rotary", "ALiBi", "alibi_slopes",
    "Dropout", "dropout",
]
