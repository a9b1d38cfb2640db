"""Run presets: settings sized for a test, a laptop CPU and one GPU, per family.

``minitransformer pretrain gpt`` uses ``cpu``: a character-level GPT that writes recognisable
Shakespeare (speaker names, line breaks, words) after a few minutes on two CPU cores. Every
setting can be overridden by a command-line flag; ``preset(family, name, **overrides)`` does the
same from Python.

- ``tiny``: seconds; for tests and for checking that everything runs.
- ``cpu``: minutes on a laptop CPU (the default).
- ``gpu``: one GPU for a few minutes (nanoGPT's ``shakespeare_char`` model size for GPT).
- ``nanogpt-cpu`` (GPT only): nanoGPT's documented CPU command, for the benchmark that compares
  our validation loss with nanoGPT's reported ~1.88 (benchmarks/bench_shakespeare_char.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from minitransformer.training.config import FAMILIES, TrainConfig

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "gpt": {
        "tiny": dict(tokenizer="char", seq_len=32, model=dict(d_model=32, n_layers=2, n_heads=2, dropout=0.0),
                     batch_size=8, max_steps=40, lr=3e-3, min_lr=3e-4, warmup_steps=5, eval_every=20,
                     eval_batches=2, log_every=5, save_every=20, sample_tokens=40, measure_mfu=False),
        # nanoGPT's CPU recipe (same model, batch and steps) with a 3x higher learning rate, which
        # this small model takes well: validation loss 1.77 instead of 1.90 on tiny Shakespeare
        # (benchmarks/bench_shakespeare_char.py); about 3 minutes. One thread: a model this small
        # gains little from a second core, and loses a lot when the machine is busy (threads
        # waiting on each other); --threads 2 is ~1.6x faster on an idle 2-core machine.
        "cpu": dict(tokenizer="char", seq_len=64, threads=1,
                    model=dict(d_model=128, n_layers=4, n_heads=4, dropout=0.0, bias=False),
                    batch_size=12, max_steps=2000, lr=3e-3, min_lr=3e-4, warmup_steps=100, beta2=0.99,
                    weight_decay=0.1, eval_every=250, eval_batches=20, log_every=10, save_every=500),
        # exactly the command in nanoGPT's README for a CPU ("we get ~1.88 validation loss")
        "nanogpt-cpu": dict(tokenizer="char", seq_len=64,
                            model=dict(d_model=128, n_layers=4, n_heads=4, dropout=0.0, bias=False),
                            batch_size=12, max_steps=2000, lr=1e-3, min_lr=1e-4, warmup_steps=100,
                            lr_decay_steps=2000, beta2=0.99, weight_decay=0.1, grad_clip=1.0,
                            eval_every=250, eval_batches=20, log_every=10, save_every=2000, sample_every=0),
        # nanoGPT's shakespeare_char GPU model: 6 layers, 384 wide, context 256
        "gpu": dict(tokenizer="char", seq_len=256,
                    model=dict(d_model=384, n_layers=6, n_heads=6, dropout=0.2, bias=False),
                    batch_size=64, max_steps=5000, lr=1e-3, min_lr=1e-4, warmup_steps=100, beta2=0.99,
                    weight_decay=0.1, eval_every=250, eval_batches=200, log_every=10, save_every=1000),
    },
    "bert": {
        "tiny": dict(tokenizer="wordpiece", vocab_size=400, seq_len=48,
                     model=dict(d_model=32, n_layers=2, n_heads=2, d_ff=64, dropout=0.0),
                     batch_size=8, max_steps=40, lr=2e-3, min_lr=2e-4, warmup_steps=5, eval_every=20,
                     eval_batches=2, log_every=5, save_every=20, measure_mfu=False),
        "cpu": dict(tokenizer="wordpiece", vocab_size=2000, seq_len=64, threads=1,
                    model=dict(d_model=128, n_layers=2, n_heads=4, d_ff=512, dropout=0.0),
                    batch_size=32, max_steps=2500, lr=2e-3, min_lr=2e-4, warmup_steps=200, beta2=0.99,
                    weight_decay=0.01, eval_every=250, eval_batches=20, log_every=10, save_every=500),
        "gpu": dict(tokenizer="wordpiece", vocab_size=8000, seq_len=128,
                    model=dict(d_model=256, n_layers=4, n_heads=4, d_ff=1024, dropout=0.1),
                    batch_size=128, max_steps=10000, lr=5e-4, min_lr=5e-5, warmup_steps=500, beta2=0.99,
                    weight_decay=0.01, eval_every=500, eval_batches=50, log_every=20, save_every=2000),
    },
    "t5": {
        "tiny": dict(tokenizer="unigram", vocab_size=400, seq_len=48, n_sentinels=20,
                     model=dict(d_model=32, d_kv=8, n_heads=4, d_ff=64, n_layers=2, dropout=0.0),
                     batch_size=8, max_steps=40, lr=3e-3, min_lr=3e-4, warmup_steps=5, eval_every=20,
                     eval_batches=2, log_every=5, save_every=20, sample_tokens=20, measure_mfu=False),
        "cpu": dict(tokenizer="unigram", vocab_size=4000, seq_len=64, n_sentinels=32, threads=1,
                    model=dict(d_model=128, d_kv=32, n_heads=4, d_ff=512, n_layers=2, dropout=0.0),
                    batch_size=32, max_steps=1500, lr=2e-3, min_lr=2e-4, warmup_steps=100, beta2=0.99,
                    weight_decay=0.0, eval_every=100, eval_batches=20, log_every=10, save_every=500,
                    sample_tokens=32),
        "gpu": dict(tokenizer="unigram", vocab_size=8000, seq_len=256, n_sentinels=100,
                    model=dict(d_model=256, d_kv=32, n_heads=8, d_ff=1024, n_layers=4, dropout=0.1),
                    batch_size=128, max_steps=10000, lr=1e-3, min_lr=1e-4, warmup_steps=500, beta2=0.99,
                    weight_decay=0.0, eval_every=500, eval_batches=50, log_every=20, save_every=2000,
                    sample_tokens=64),
    },
}

# Fine-tuning (``minitransformer finetune``): the model and its tokenizer come from the starting
# folder, so these are only the data lengths and the optimization. A lower peak learning rate than
# pretraining's: the weights are already good and should move less.
FINETUNE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "t5": {
        "tiny": dict(seq_len=48, target_len=48, batch_size=8, max_steps=20, lr=1e-3, min_lr=1e-4, warmup_steps=2,
                     weight_decay=0.0, eval_every=10, eval_batches=2, log_every=5, save_every=10,
                     measure_mfu=False),
        # the built-in SQL task from a `pretrain t5` run in ~9 minutes. Its SQL targets are up to 80 pieces
        # of a Shakespeare tokenizer (so target_len 128). Measured on held-out SQL: 1000 steps at 1e-3, 44%
        # exact match; at 3e-3, 28% (lower validation loss, worse answers); 600 steps at 1e-3 with targets
        # cut to 64 pieces, 6%.
        "cpu": dict(seq_len=64, target_len=128, threads=1, batch_size=32, max_steps=1000, lr=1e-3, min_lr=1e-4,
                    warmup_steps=50, beta2=0.99, weight_decay=0.0, eval_every=100, eval_batches=10, log_every=10,
                    save_every=200),
        "gpu": dict(seq_len=256, target_len=128, batch_size=128, max_steps=3000, lr=5e-4, min_lr=5e-5,
                    warmup_steps=100, beta2=0.99, weight_decay=0.0, eval_every=250, eval_batches=20, log_every=20,
                    save_every=1000),
    },
    # prompt + completion in one sequence: seq_len is the whole (the cpu GPT's context is 64 characters)
    "gpt": {
        "tiny": dict(seq_len=32, target_len=16, batch_size=8, max_steps=20, lr=1e-3, min_lr=1e-4, warmup_steps=2,
                     weight_decay=0.0, eval_every=10, eval_batches=2, log_every=5, save_every=10, measure_mfu=False),
        "cpu": dict(seq_len=64, target_len=32, threads=1, batch_size=32, max_steps=500, lr=1e-3, min_lr=1e-4,
                    warmup_steps=50, beta2=0.99, weight_decay=0.1, eval_every=100, eval_batches=10, log_every=10,
                    save_every=250),
        "gpu": dict(seq_len=256, target_len=128, batch_size=64, max_steps=3000, lr=3e-4, min_lr=3e-5,
                    warmup_steps=100, beta2=0.99, weight_decay=0.1, eval_every=250, eval_batches=20, log_every=20,
                    save_every=1000),
    },
    # BERT's recipe (Devlin et al. 2019 App. A.3: a few epochs, warm-up, weight decay 0.01) at a small scale
    "bert": {
        "tiny": dict(seq_len=48, batch_size=8, max_steps=20, lr=1e-3, min_lr=1e-4, warmup_steps=2, weight_decay=0.01,
                     eval_every=10, eval_batches=2, log_every=5, save_every=10, measure_mfu=False),
        "cpu": dict(seq_len=64, batch_size=32, max_steps=300, lr=1e-4, min_lr=1e-5, warmup_steps=30,
                    beta2=0.999, weight_decay=0.01, eval_every=50, eval_batches=10, log_every=10, save_every=100),
        "gpu": dict(seq_len=128, batch_size=64, max_steps=2000, lr=5e-5, min_lr=5e-6, warmup_steps=200, beta2=0.999,
                    weight_decay=0.01, eval_every=250, eval_batches=20, log_every=20, save_every=1000),
    },
}

DEFAULT_PRESET = "cpu"


def preset_names(family: str) -> list[str]:
    if family not in PRESETS:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return list(PRESETS[family])


def preset(family: str, name: str = DEFAULT_PRESET, finetune: bool = False, **overrides: Any) -> TrainConfig:
    """The ``TrainConfig`` of a preset, with ``overrides`` (None values are ignored).

    ``model`` overrides are merged into the preset's model fields rather than replacing them;
    ``vocab_size=0`` removes the preset's vocabulary size (for a char tokenizer or a tokenizer file).
    ``finetune=True``: a fine-tuning preset (``FINETUNE_PRESETS``) instead. With ``init_from`` the
    preset's model shape and vocabulary size are dropped and the tokenizer is that folder's
    ``tokenizer.json`` (unless ``tokenizer`` names another file): the starting model brings its own.
    """
    table = FINETUNE_PRESETS if finetune else PRESETS
    names = preset_names(family)
    if finetune and family not in FINETUNE_PRESETS:
        raise ValueError(f"fine-tuning is built for {', '.join(FINETUNE_PRESETS)}, not {family}")
    if name not in table[family]:
        raise ValueError(f"unknown {family} {'fine-tuning ' if finetune else ''}preset {name!r}; "
                         f"available: {', '.join(table[family] if finetune else names)}")
    settings: dict[str, Any] = {"family": family, "preset": name, **table[family][name]}
    if finetune:
        settings["task"] = "classify" if family == "bert" else "text-to-text"
    settings["model"] = dict(settings.get("model", {}))
    if overrides.get("init_from") is not None:  # the starting model brings its shape and its tokenizer
        settings["model"], settings["vocab_size"] = {}, None
        settings["tokenizer"] = str(Path(overrides["init_from"]) / "tokenizer.json")
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "model":
            settings["model"].update(value)
        elif key == "vocab_size" and value == 0:
            settings["vocab_size"] = None  # "no vocabulary size": the tokenizer decides
        else:
            settings[key] = value
    return TrainConfig.from_dict(settings)
