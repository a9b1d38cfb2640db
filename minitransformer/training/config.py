"""``TrainConfig``: every setting of a pretraining run, in one plain dataclass.

A run is fully described by its ``TrainConfig`` (saved as ``run.json`` in the run folder): the
family, the corpus, the tokenizer, the model's shape, the optimization schedule, the objective's
knobs and the seed. Presets (``presets.py``) fill it in; command-line flags override single
fields. ``--resume`` reads ``run.json`` back and refuses settings that would change the run
(``RESUME_MAY_CHANGE`` lists the ones that may differ: they change how long it runs or where, not
what it computes).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from minitransformer.checks import check_int, check_number
from minitransformer.tokenizers.base import MAX_VOCAB_SIZE

FAMILIES = ("gpt", "bert", "t5")
TOKENIZER_KINDS = ("char", "bpe", "wordpiece", "unigram")
DTYPES = ("auto", "float32", "bfloat16", "float16")
MAX_THREADS = 1024  # beyond this, thread pools fail in ways that are not errors (a crash, not a message)

# Settings a resumed run may change: how far it goes, how often it reports, where it runs.
RESUME_MAY_CHANGE = frozenset({
    "max_steps", "eval_every", "eval_batches", "log_every", "save_every", "keep_last", "sample_every",
    "sample_tokens", "sample_prompt", "device", "dtype", "compile", "threads", "progress", "measure_mfu", "plot", "preset",
})


@dataclass
class TrainConfig:
    """The settings of one pretraining run (see ``presets.py`` for sized defaults)."""

    family: str = "gpt"                 # "gpt" | "bert" | "t5"
    preset: str = "cpu"                 # the preset these settings started from (informative)
    corpus: str = "shakespeare"         # "shakespeare" (embedded), a .txt file, a folder or a glob
    val_fraction: float = 0.1           # the tail of each document goes to validation
    tokenizer: str = "char"             # "char" | "bpe" | "wordpiece" | "unigram" | path to tokenizer.json
    vocab_size: int | None = None       # for trained bpe/wordpiece/unigram tokenizers
    model: dict[str, Any] = field(default_factory=dict)  # model-config fields (d_model, n_layers, ...)
    seq_len: int = 64                   # GPT context / BERT pair length / T5 encoder input length

    # optimization (AdamW, linear warm-up then cosine decay to min_lr)
    batch_size: int = 12                # sequences per micro-batch, over all processes together
    grad_accum: int = 1                 # micro-batches per optimizer step
    max_steps: int = 2000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    lr_decay_steps: int | None = None   # None -> max_steps of the first launch
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0              # 0 disables clipping

    # objectives
    mlm_probability: float = 0.15       # BERT
    noise_density: float = 0.15         # T5
    mean_noise_span_length: float = 3.0  # T5
    n_sentinels: int = 100              # T5 sentinel tokens added to a trained tokenizer

    # evaluation, logging, checkpoints, samples
    eval_every: int = 250
    eval_batches: int = 20
    log_every: int = 10
    save_every: int = 500
    keep_last: int = 2
    sample_every: int | None = None     # None -> with each evaluation; 0 -> only at the end
    sample_tokens: int = 300
    sample_prompt: str = "\n"

    seed: int = 1337
    device: str = "auto"                # "auto" | "cpu" | "cuda" | "cuda:1" | "mps"
    dtype: str = "auto"                 # "auto" | "float32" | "bfloat16" | "float16"
    compile: bool = False
    threads: int | None = None          # CPU threads for torch (None: torch's default, one per core)
    progress: bool = True
    measure_mfu: bool = True
    plot: bool = True                   # draw loss.png (at the end, and at checkpoints every 30 s or more)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """ValueError naming the setting and what is allowed."""
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        for name in ("seq_len", "batch_size", "grad_accum", "eval_every", "eval_batches", "log_every",
                     "save_every", "keep_last"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_int("max_steps", self.max_steps, 1)
        for name in ("warmup_steps", "sample_tokens", "n_sentinels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.lr_decay_steps is not None and self.lr_decay_steps < 1:
            raise ValueError(f"lr_decay_steps must be >= 1, got {self.lr_decay_steps}")
        if self.sample_every is not None and self.sample_every < 0:
            raise ValueError(f"sample_every must be >= 0, got {self.sample_every}")
        for name in ("lr", "min_lr", "weight_decay", "grad_clip"):  # NaN would pass every comparison below
            check_number(name, getattr(self, name))
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr!r}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(f"weight_decay and grad_clip must be >= 0, got {self.weight_decay}, {self.grad_clip}")
        check_int("seed", self.seed, 0, 2**63 - 1)
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("mlm_probability", "noise_density"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.mean_noise_span_length < 1:
            raise ValueError(f"mean_noise_span_length must be >= 1, got {self.mean_noise_span_length}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.threads is not None:
            check_int("threads", self.threads, 1, MAX_THREADS)
        if self.vocab_size is not None:
            check_int("vocab_size", self.vocab_size, 1, MAX_VOCAB_SIZE)
        if not isinstance(self.model, dict):
            raise TypeError(f"model must be a dict of model-config fields, got {type(self.model).__name__}")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.seq_len

    @property
    def decay_steps(self) -> int:
        return self.lr_decay_steps if self.lr_decay_steps is not None else max(self.max_steps, 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        return cls(**data)

    def resume_conflicts(self, saved: TrainConfig) -> list[str]:
        """Settings that differ from ``saved`` and may not change on ``--resume`` (as messages)."""
        out = []
        for f in dataclasses.fields(self):
            if f.name in RESUME_MAY_CHANGE:
                continue
            mine, theirs = getattr(self, f.name), getattr(saved, f.name)
            if mine != theirs:
                out.append(f"{f.name}={theirs!r} in the run, {mine!r} now")
        return out
