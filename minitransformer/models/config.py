"""Model configurations: plain dataclasses that check themselves, with presets of published shapes.

The three families share most knobs (``d_model``, ``n_layers``, ``n_heads``, ``d_ff``, dropout,
attention backend); what differs is exactly what makes them different architectures: BERT is
a post-LN bidirectional encoder with segment embeddings, GPT a pre-LN causal decoder with a tied
LM head, T5 a pre-LN RMSNorm encoder-decoder with relative position bias and no biases.

Derived sizes (``d_ff`` = 4·d_model, BERT's ``embedding_size`` = d_model) are filled in when a
config is made. ``dataclasses.replace(cfg, d_model=...)`` keeps the old derived values, so change
them together there, or use ``Config.preset(name, d_model=...)``, which derives them afresh.

Presets reproduce the shapes of the reference table (BERT-Large, GPT-2 117M and 1.5B, GPT-3
175B, T5-11B, RoBERTa-Large, ELECTRA-Large) plus small ones that train on a laptop.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from minitransformer.checks import check_int, check_number
from minitransformer.nn.attention import BACKENDS
from minitransformer.nn.feedforward import ACTIVATIONS
from minitransformer.nn.position import POSITIONS, check_bucket_settings

C = TypeVar("C", bound="_Config")


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{type(cfg).__name__}.{name} must be a positive integer, got {value!r}")


def _probability(cfg: Any, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
            raise ValueError(f"{type(cfg).__name__}.{name} must be in [0, 1), got {value!r}")


def _flag(cfg: Any, *names: str) -> None:
    """True/False only: a string such as "no" would otherwise count as True."""
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, bool):
            raise ValueError(f"{type(cfg).__name__}.{name} must be True or False, got {value!r}")


def _token_id(cfg: Any, *names: str, optional: bool = False) -> None:
    """An id in [0, vocab_size) (or None where ``optional``)."""
    for name in names:
        value = getattr(cfg, name)
        if not (value is None and optional):
            check_int(f"{type(cfg).__name__}.{name}", value, 0, cfg.vocab_size - 1)


def _choice(cfg: Any, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in allowed:
        raise ValueError(f"{type(cfg).__name__}.{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


class _Config:
    """Shared behaviour: presets, JSON round trip. Subclasses are dataclasses with a ``PRESETS`` dict."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def preset(cls: type[C], name: str, **overrides: Any) -> C:
        """A published or teaching shape by name, e.g. ``GPTConfig.preset("gpt2-117m")``."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown {cls.__name__} preset {name!r}; available: {', '.join(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}.from_dict expects a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known - {"family"})
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class GPTConfig(_Config):
    """A GPT-2/3-style causal decoder (Radford et al. 2018, 2019; Brown et al. 2020)."""

    vocab_size: int = 50257
    max_seq_len: int = 1024  # context length (GPT-2's n_positions, nanoGPT's block_size)
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None -> 4 * d_model
    dropout: float = 0.1  # embedding, residual and attention-weight dropout
    activation: str = "gelu_tanh"
    norm_eps: float = 1e-5
    bias: bool = True  # biases in linear layers and LayerNorms
    tie_embeddings: bool = True  # LM head shares the token-embedding matrix
    attention_backend: str = "sdpa"
    eos_token_id: int | None = None
    # how the model knows where a token is: "learned" (GPT-2: a trained vector per position),
    # "sinusoidal" (Vaswani et al. 2017: fixed vectors), "rope" (Su et al. 2021: rotated queries and
    # keys) or "alibi" (Press et al. 2022: a distance penalty on the scores); see nn/position.py
    position: str = "learned"
    rope_base: float = 10000.0  # RoPE's θ_i = base^(-2i/d_head)
    rotary_fraction: float = 1.0  # RoPE turns this share of each head's features (GPT-NeoX, Pythia: 0.25)
    parallel_residual: bool = False  # x + Attn(LN(x)) + FFN(LN'(x)), as GPT-J and GPT-NeoX (not GPT-2)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # the released "124M" model (the paper's table says 117M)
        "gpt2-117m": dict(vocab_size=50257, max_seq_len=1024, d_model=768, n_layers=12, n_heads=12),
        "gpt2-1.5b": dict(vocab_size=50257, max_seq_len=1024, d_model=1600, n_layers=48, n_heads=25),
        # GPT-3's largest model (Brown et al. 2020, Table 2.1), on GPT-2's vocabulary
        "gpt3-175b": dict(vocab_size=50257, max_seq_len=2048, d_model=12288, n_layers=96, n_heads=96),
        # Pythia's smallest (Biderman et al. 2023): GPT-NeoX's shape, RoPE on a quarter of each head,
        # attention and feed-forward in parallel, exact GELU, an untied head
        "pythia-70m": dict(vocab_size=50304, max_seq_len=2048, d_model=512, n_layers=6, n_heads=8,
                           activation="gelu", tie_embeddings=False, position="rope", rotary_fraction=0.25,
                           parallel_residual=True, dropout=0.0),
        # nanoGPT's shakespeare_char model: characters, context 256
        "shakespeare-char": dict(vocab_size=65, max_seq_len=256, d_model=384, n_layers=6, n_heads=6, dropout=0.2),
        "tiny": dict(vocab_size=256, max_seq_len=64, d_model=64, n_layers=2, n_heads=4, dropout=0.0),
    }

    def __post_init__(self) -> None:
        _positive(self, "d_model")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        _positive(self, "vocab_size", "max_seq_len", "d_model", "n_layers", "n_heads", "d_ff")
        if self.d_model % self.n_heads:
            raise ValueError(f"GPTConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        _probability(self, "dropout")
        _choice(self, "activation", ACTIVATIONS)
        _choice(self, "attention_backend", BACKENDS)
        check_number("GPTConfig.norm_eps", self.norm_eps, 0, low_open=True)
        _flag(self, "bias", "tie_embeddings", "parallel_residual")
        _token_id(self, "eos_token_id", optional=True)
        _choice(self, "position", POSITIONS)
        check_number("GPTConfig.rope_base", self.rope_base, 1, low_open=True)
        check_number("GPTConfig.rotary_fraction", self.rotary_fraction, 0, 1, low_open=True)
        if self.position != "rope" and self.rotary_fraction != 1.0:
            raise ValueError(f"GPTConfig.rotary_fraction={self.rotary_fraction} applies to position='rope', "
                             f"not {self.position!r}")
        turned = self.rotary_dims
        if self.position == "rope" and (turned < 2 or turned % 2):
            raise ValueError(f"GPTConfig position='rope' turns pairs of features, so the features turned per "
                             f"head, int(d_model / n_heads * rotary_fraction) = {turned}, must be even and >= 2")

    @property
    def rotary_dims(self) -> int:
        """How many features of each head RoPE turns (the first ones)."""
        return int(self.d_model // self.n_heads * self.rotary_fraction)


@dataclass
class BertConfig(_Config):
    """A BERT-style bidirectional encoder (Devlin et al. 2019), also RoBERTa and ELECTRA shapes.

    Heads are switched on by flags: ``pooler`` (dense + tanh on [CLS]), ``mlm_head`` (masked-LM),
    ``nsp_head`` (next-sentence prediction), ``discriminator_head`` (ELECTRA's replaced-token detection).
    RoBERTa numbers positions from ``pad_token_id + 1`` (``position_offset=2``) and has a single token
    type; ELECTRA may use an ``embedding_size`` smaller than ``d_model`` with a projection.
    """

    vocab_size: int = 30522
    max_seq_len: int = 512
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None  # None -> 4 * d_model
    type_vocab_size: int = 2
    embedding_size: int | None = None  # None -> d_model (ELECTRA-small uses 128 with a projection)
    dropout: float = 0.1
    activation: str = "gelu"
    # None -> activation. BERT's MLM transform uses the encoder's activation; RoBERTa's LM head and
    # ELECTRA's generator always use exact GELU, whatever the encoder uses (as in transformers).
    mlm_head_activation: str | None = None
    norm_eps: float = 1e-12
    pad_token_id: int = 0
    position_offset: int = 0
    pooler: bool = True
    mlm_head: bool = True
    nsp_head: bool = True
    discriminator_head: bool = False
    attention_backend: str = "sdpa"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "bert-base": dict(d_model=768, n_layers=12, n_heads=12, d_ff=3072),
        "bert-large": dict(d_model=1024, n_layers=24, n_heads=16, d_ff=4096),
        "roberta-large": dict(vocab_size=50265, d_model=1024, n_layers=24, n_heads=16, d_ff=4096, type_vocab_size=1,
                              norm_eps=1e-5, pad_token_id=1, position_offset=2, pooler=False, nsp_head=False,
                              mlm_head_activation="gelu"),
        "electra-large": dict(d_model=1024, n_layers=24, n_heads=16, d_ff=4096, embedding_size=1024, pooler=False,
                              mlm_head=False, nsp_head=False, discriminator_head=True),
        # sentence-transformers' all-MiniLM-L6-v2: a bare 6-layer, 384-wide encoder
        "minilm-l6-h384": dict(d_model=384, n_layers=6, n_heads=12, d_ff=1536, mlm_head=False, nsp_head=False),
        "tiny": dict(vocab_size=512, max_seq_len=128, d_model=64, n_layers=2, n_heads=4, dropout=0.0),
    }

    def __post_init__(self) -> None:
        _positive(self, "d_model")
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        if self.embedding_size is None:
            self.embedding_size = self.d_model
        _positive(self, "vocab_size", "max_seq_len", "d_model", "n_layers", "n_heads", "d_ff",
                  "type_vocab_size", "embedding_size")
        if self.d_model % self.n_heads:
            raise ValueError(f"BertConfig.d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        _probability(self, "dropout")
        _choice(self, "activation", ACTIVATIONS)
        if self.mlm_head_activation is not None:
            _choice(self, "mlm_head_activation", ACTIVATIONS)
        _choice(self, "attention_backend", BACKENDS)
        check_number("BertConfig.norm_eps", self.norm_eps, 0, low_open=True)
        _flag(self, "pooler", "mlm_head", "nsp_head", "discriminator_head")
        _token_id(self, "pad_token_id")
        check_int("BertConfig.position_offset", self.position_offset, 0)
        if self.nsp_head and not self.pooler:
            raise ValueError("BertConfig.nsp_head needs pooler=True (NSP classifies the pooled [CLS] vector)")


@dataclass
class T5Config(_Config):
    """A T5 encoder-decoder (Raffel et al. 2020): RMSNorm, pre-LN, no biases, relative position bias.

    ``feed_forward="relu"`` is T5 v1.0 (tied LM head); ``"gated-gelu"`` with ``tie_embeddings=False``
    is T5 v1.1. ``d_kv`` is the per-head size, independent of ``d_model / n_heads``.
    ``max_seq_len`` is not a position table (T5 has none) but the longest input we accept.
    """

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    n_heads: int = 8
    d_ff: int = 2048
    n_layers: int = 6
    n_decoder_layers: int | None = None  # None -> n_layers
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout: float = 0.1
    norm_eps: float = 1e-6
    feed_forward: str = "relu"
    tie_embeddings: bool = True
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0
    max_seq_len: int = 512
    attention_backend: str = "sdpa"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "t5-small": dict(d_model=512, d_kv=64, n_heads=8, d_ff=2048, n_layers=6),
        "t5-base": dict(d_model=768, d_kv=64, n_heads=12, d_ff=3072, n_layers=12),
        "t5-11b": dict(d_model=1024, d_kv=128, n_heads=128, d_ff=65536, n_layers=24),
        "tiny": dict(vocab_size=512, d_model=64, d_kv=16, n_heads=4, d_ff=128, n_layers=2, dropout=0.0,
                     max_seq_len=128),
    }

    def __post_init__(self) -> None:
        if self.n_decoder_layers is None:
            self.n_decoder_layers = self.n_layers
        _positive(self, "vocab_size", "d_model", "d_kv", "n_heads", "d_ff", "n_layers", "n_decoder_layers",
                  "relative_attention_num_buckets", "relative_attention_max_distance", "max_seq_len")
        _probability(self, "dropout")
        _choice(self, "feed_forward", ("relu", "gated-gelu"))
        _choice(self, "attention_backend", BACKENDS)
        try:  # the decoder's causal buckets ask more of these two than the encoder's
            check_bucket_settings(self.relative_attention_num_buckets, self.relative_attention_max_distance,
                                  bidirectional=False)
            check_bucket_settings(self.relative_attention_num_buckets, self.relative_attention_max_distance,
                                  bidirectional=True)
        except ValueError as err:
            raise ValueError(f"T5Config relative_attention_num_buckets / relative_attention_max_distance: {err}") from None
        check_number("T5Config.norm_eps", self.norm_eps, 0, low_open=True)
        _flag(self, "tie_embeddings")
        _token_id(self, "pad_token_id", "eos_token_id", "decoder_start_token_id")
