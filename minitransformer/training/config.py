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
TASKS = ("pretrain", "text-to-text", "classify")
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

    # starting point and fine-tuning (``minitransformer finetune``)
    task: str = "pretrain"              # "pretrain": the family's objective on `corpus` | "text-to-text" (t5, gpt)
                                        # and "classify" (bert): fine-tuning on (input, target) pairs
    init_from: str | None = None        # start from this folder's weights and tokenizer (a run or model folder)
    val_corpus: str | None = None       # fine-tuning: a validation pairs file (None: part of `corpus`)
    target_len: int = 64                # text-to-text: the longest target in tokens, its end marker included

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
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.task == "text-to-text" and self.family not in ("t5", "gpt"):
            raise ValueError(f"text-to-text fine-tuning is built for t5 and gpt, not {self.family} (an encoder "
                             "writes no text: fine-tune it as a classifier)")
        if self.task == "classify" and self.family != "bert":
            raise ValueError(f"classification fine-tuning is built for bert (an encoder), not {self.family}")
        if self.task != "pretrain" and self.init_from is None:
            raise ValueError(f"{self.task} fine-tuning starts from a trained model: set init_from (--from) to its "
                             "folder")
        if self.val_corpus is not None and self.task == "pretrain":
            raise ValueError("val_corpus applies to fine-tuning; pretraining validates on the tail of its corpus "
                             "(val_fraction)")
        if self.task == "text-to-text" and self.family == "gpt" and not 1 < self.target_len < self.seq_len:
            raise ValueError(f"a GPT reads prompt and target in one sequence of seq_len={self.seq_len} tokens: "
                             f"target_len ({self.target_len}) must be at least 2 and less than seq_len")
        for name in ("seq_len", "target_len", "batch_size", "grad_accum", "max_steps", "eval_every", "eval_batches", "log_every",
                     "save_every", "keep_last"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup_steps", "sample_tokens", "n_sentinels"):
            check_int(name, getattr(self, name), 0)
        if self.lr_decay_steps is not None:
            check_int("lr_decay_steps", self.lr_decay_steps, 1)
        if self.sample_every is not None:
            check_int("sample_every", self.sample_every, 0)
        # finite numbers only: NaN would pass every comparison
        check_number("lr", self.lr, 0, low_open=True)
        check_number("min_lr", self.min_lr, 0, self.lr)
        check_number("weight_decay", self.weight_decay, 0)
        check_number("grad_clip", self.grad_clip, 0)
        check_int("seed", self.seed, 0, 2**63 - 1)
        for name in ("beta1", "beta2"):
            check_number(name, getattr(self, name), 0, 1, high_open=True)
        for name in ("val_fraction", "mlm_probability", "noise_density"):
            check_number(name, getattr(self, name), 0, 1, low_open=True, high_open=True)
        check_number("mean_noise_span_length", self.mean_noise_span_length, 1)
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
