"""The training loop: one loop for every family, nanoGPT's ``train.py`` made into a library.

    for step in range(start, max_steps):
        lr = warm-up then cosine (Loshchilov & Hutter 2017), set on every parameter group
        for each micro-batch (gradient accumulation):
            loss = objective.loss(model, batch)       # under autocast for bf16/fp16
            (loss / grad_accum).backward()            # DDP all-reduces only on the last one
        stop if the loss is NaN/inf (the last good checkpoint stays the latest)
        clip the gradient norm, AdamW step (Loshchilov & Hutter 2019), zero the gradients
        every so often: log, evaluate, print a sample, save a checkpoint

What makes a run reproducible and resumable exactly (``--resume`` continues bit for bit on a CPU):

- every batch is a function of ``(seed, step, micro-step)`` (see ``batches.py``), so the step is
  the data position;
- dropout's random numbers come from torch's global generator, re-seeded from
  ``(seed, step, rank)`` at the start of every step, so they too depend only on the step (and the
  rank: with dropout, N processes draw other masks than one process, the one way they differ);
- the checkpoint holds the weights and the optimizer's moments and step counts exactly
  (``checkpoint.py``); the learning rate is a pure function of the step.

Mixed precision: ``bfloat16`` autocast (CPU or CUDA) keeps float32 master weights and needs no loss
scaling; ``float16`` (CUDA only) needs a ``GradScaler`` so small gradients do not flush to zero.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from minitransformer.checks import check_int
from minitransformer.training import checkpoint as ckpt
from minitransformer.training.batches import TRAIN, VAL, Objective, make_generator
from minitransformer.training.config import TrainConfig
from minitransformer.training.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    check_one_gpu_each,
    init_distributed,
    local_rank,
    maybe_no_sync,
    wrap_ddp,
)
from minitransformer.training.metrics import MetricsLog

RUN_NAME = "run.json"
DATA_DIR = "data"
SAMPLES_NAME = "samples.txt"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; training stopped without saving."""


# ---- devices, precision, schedule --------------------------------------------------------------

def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU. Asking for what is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        elif device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None = plain float32). ``auto``: bf16 on CUDA (fp16 on old GPUs), else float32.

    "Old" means before Ampere (compute capability 8): a T4 or V100 runs bf16 only by emulation, slowly,
    although ``torch.cuda.is_bf16_supported()`` says yes (it counts emulation), so we ask the capability.
    """
    if name == "auto":
        if device.type == "cuda":
            if torch.version.hip:  # AMD GPUs that run PyTorch do bf16
                return torch.bfloat16
            return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16
        return None
    if name == "float32":
        return None
    if name == "bfloat16":
        return torch.bfloat16
    if name == "float16":
        if device.type != "cuda":
            raise ValueError(f"--dtype float16 needs a CUDA GPU (it trains with a GradScaler); on {device.type} "
                             "use float32 or bfloat16")
        return torch.float16
    raise ValueError(f"unknown dtype {name!r}; use auto, float32, bfloat16 or float16")


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, cosine decay to ``min_lr`` at ``decay_steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
    if step >= cfg.decay_steps:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.decay_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def seed_from(*keys: int) -> int:
    return int(make_generator(*keys).initial_seed())


def model_class(family: str) -> type[nn.Module]:
    """The model class of ``family`` (imported on demand)."""
    if family == "gpt":
        from minitransformer.models.gpt import GPT as cls
    elif family == "bert":
        from minitransformer.models.bert import Bert as cls
    elif family == "t5":
        from minitransformer.models.t5 import T5 as cls
    else:
        raise ValueError(f"unknown family {family!r}")
    return cls


def build_model(family: str, config) -> nn.Module:
    """A fresh model of ``family`` for ``config`` (a ``ClassifierConfig``: a BERT ``SequenceClassifier``)."""
    from minitransformer.finetune import ClassifierConfig, SequenceClassifier

    if isinstance(config, ClassifierConfig):
        return SequenceClassifier.from_config(config)
    return model_class(family)(config)


def read_model_config(folder: str | os.PathLike) -> tuple[str, Any]:
    """(family, model config) of one of our folders' ``config.json`` (a run, a checkpoint): a ``GPTConfig``,
    ``BertConfig`` or ``T5Config`` by its ``"family"``, or a fine-tuned classifier's ``ClassifierConfig``."""
    from minitransformer.finetune import ClassifierConfig
    from minitransformer.interop.files import read_config_json
    from minitransformer.models.config import BertConfig, GPTConfig, T5Config

    data = read_config_json(folder)
    classes = {"gpt": GPTConfig, "bert": BertConfig, "t5": T5Config}
    if data.get("family") not in classes:
        raise ValueError(f"{Path(folder) / 'config.json'} names no model family we know "
                         f"(family={data.get('family')!r})")
    family = data["family"]
    if data.get("task") == "classify":
        return family, ClassifierConfig.from_dict(data)
    return family, classes[family].from_dict(data)


def load_init_model(cfg: TrainConfig, folder: str | os.PathLike) -> nn.Module:
    """The trained model a fresh run starts from (``cfg.init_from``; a resumed one reads its checkpoint).

    Any folder ``from_pretrained`` reads: a run folder, a checkpoint, a ``save_pretrained`` folder or
    a local Hugging Face folder of the family's kind.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"the starting model's folder {folder} does not exist (give a run folder or a saved "
                                "model's folder)")
    from minitransformer.interop.files import read_config_json

    if read_config_json(folder).get("task") == "classify":
        raise ValueError(f"{folder} holds a fine-tuned classifier; start from the pretrained model it came from")
    try:
        with warnings.catch_warnings():  # (a bare BERT encoder's missing heads: checked below, for what needs them)
            warnings.filterwarnings("ignore", message=".*holds no weights for")
            model = model_class(cfg.family).from_pretrained(folder)
    except (KeyError, TypeError) as e:
        raise ValueError(f"{folder} holds no {cfg.family} model we can read ({e})") from None
    if cfg.family == "bert" and cfg.task == "pretrain" and not (model.config.mlm_head and model.config.nsp_head):
        raise ValueError(f"{folder} holds a BERT without its masked-LM and next-sentence heads (a bare encoder); "
                         "pretraining needs them. Fine-tune it instead: minitransformer finetune bert --from ...")
    return model


def fit_init_config(cfg: TrainConfig, config, vocab_size: int):
    """The config of a model started from ``config``'s weights: the run's ``model`` settings that do
    not change a weight's shape (dropout) applied, the vocabulary grown to the tokenizer's, and where no
    weight depends on the length (T5's relative positions; a GPT with sinusoidal, RoPE or ALiBi
    positions) the longest input raised to the run's lengths: continued pretraining on longer text."""
    shaping = sorted(set(cfg.model) - {"dropout"})
    if shaping:
        raise ValueError(f"--init-from takes the model's shape from {cfg.init_from}; only --dropout may change "
                         f"(got {', '.join(shaping)})")
    changes: dict[str, Any] = dict(cfg.model)
    if vocab_size > config.vocab_size:
        changes["vocab_size"] = vocab_size  # the tokenizer has tokens the model lacks: grown rows
    if cfg.family == "t5" or getattr(config, "position", "learned") != "learned":
        changes["max_seq_len"] = max(config.max_seq_len, cfg.seq_len, cfg.target_len)
    elif cfg.seq_len > config.max_seq_len:  # learned position tables cannot grow
        raise ValueError(f"--seq-len {cfg.seq_len} is longer than the model in {cfg.init_from} reads "
                         f"(max_seq_len={config.max_seq_len}, a learned position table); give --seq-len "
                         f"{config.max_seq_len} or less (a GPT with position sinusoidal, rope or alibi can grow)")
    return dataclasses.replace(config, **changes)


def model_flops_per_token(family: str, config, n_params: int, seq_len: int) -> int:
    """Training FLOPs per token, 6·N + 12·L·T·d (``minitransformer.flops``); for T5 the decoder's
    layers are counted with the encoder's (an estimate: its targets are shorter than its inputs)."""
    from minitransformer.flops import flops_per_token, gpt_flops_per_token

    if family == "gpt":
        return gpt_flops_per_token(config, seq_len)
    config = getattr(config, "encoder", config)  # a classifier: its encoder does the work
    n_layers = config.n_layers + (getattr(config, "n_decoder_layers", 0) or 0)
    return flops_per_token(n_params, n_layers, seq_len, config.d_model)


# ---- the run folder ----------------------------------------------------------------------------

def read_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The ``TrainConfig`` saved in a run folder's ``run.json``."""
    path = Path(run_dir) / RUN_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no {RUN_NAME})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TrainConfig.from_dict(data["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a readable run description: {e}") from None


def check_run_dir(run_dir: Path, cfg: TrainConfig, resume: bool) -> TrainConfig | None:
    """Refuse what would overwrite a run or mix two runs; returns the saved config on resume."""
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"output folder {run_dir} exists and is a file")
    if resume:
        if not (run_dir / RUN_NAME).is_file():
            raise FileNotFoundError(f"--resume: {run_dir} holds no run to resume (no {RUN_NAME})")
        saved = read_run_config(run_dir)
        if cfg.lr_decay_steps is None:
            cfg.lr_decay_steps = saved.lr_decay_steps
        conflicts = cfg.resume_conflicts(saved)
        if conflicts:
            hint = (f" (the run was started with --preset {saved.preset}: pass it again)"
                    if saved.preset != cfg.preset else "")
            raise ValueError(f"--resume: {run_dir} is a different run; these settings differ: "
                             + "; ".join(conflicts[:6]) + (" ..." if len(conflicts) > 6 else "") + hint)
        return saved
    if run_dir.is_dir() and (run_dir / RUN_NAME).is_file():
        raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ValueError(f"output folder {run_dir} exists and is not empty; choose another --out")
    if cfg.lr_decay_steps is None:
        cfg.lr_decay_steps = max(cfg.max_steps, 1)
    return None


def create_run_dir(run_dir: Path) -> None:
    """Create the output folder and prove it is writable (a clear error otherwise)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except (PermissionError, NotADirectoryError, FileExistsError, OSError) as e:
        reason = e.strerror or str(e)
        raise PermissionError(f"cannot write to the output folder {run_dir}: {reason}") from None


@torch.no_grad()
def evaluate_objective(objective: Objective, model: nn.Module, forward_model: nn.Module, n_batches: int,
                       rows: slice, device: torch.device, autocast: Callable[[], contextlib.AbstractContextManager],
                       dist_info: DistInfo | None = None) -> dict[str, float]:
    """The objective's validation metrics over batches ``0..n_batches-1`` of the validation split.

    ``model`` is switched to eval mode (no dropout) meanwhile; ``forward_model`` (the same model,
    maybe compiled) computes. Under DDP every process adds up its rows and the sums are all-reduced.
    """
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    try:
        for i in range(n_batches):
            batch = {k: v.to(device, non_blocking=True) for k, v in objective.batch(VAL, i, 0, rows).items()}
            with autocast():
                part = objective.eval_sums(forward_model, batch)
            for name, value in part.items():
                sums[name] = sums[name] + value if name in sums else value
    finally:
        model.train()
    if dist_info is not None and dist_info.enabled:
        import torch.distributed as dist

        names = sorted(sums)
        stacked = torch.stack([sums[n] for n in names]).to(device)
        dist.all_reduce(stacked)
        sums = {n: stacked[i].cpu() for i, n in enumerate(names)}
    return objective.finish(sums)


# ---- the trainer -------------------------------------------------------------------------------

@dataclass
class TrainResult:
    """What ``Trainer.run`` returns."""

    run_dir: Path
    step: int
    val: dict[str, float] = field(default_factory=dict)  # the last validation metrics
    best_val_loss: float = float("inf")
    samples: list[str] = field(default_factory=list)
    is_main: bool = True  # False in the other processes of a distributed run (they stay quiet)
    train_seconds: float = 0.0  # time spent in training steps (not evaluation, samples or saving)


class Trainer:
    """Pretrain one model: ``Trainer(cfg, run_dir, resume=False).run()``.

    ``say`` prints progress lines (only the main process prints). Distributed training is picked
    up from torchrun's environment variables (see ``distributed.py``).
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool = False,
                 say: Callable[[str], None] | None = None) -> None:
        cfg.validate()
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume
        self._say = say
        self.bar = None
        self._last_plot = time.perf_counter()

    # printing ---------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        if not self.dist.is_main:
            return
        if self._say is not None:
            self._say(message)
        elif self.bar is not None:
            self.bar.write(message)
        else:
            print(message, flush=True)

    # setup ------------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.cfg
        self.device = resolve_device(cfg.device, local_rank())
        check_one_gpu_each(cfg.device, self.device)
        self.amp_dtype = resolve_dtype(cfg.dtype, self.device)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        self.dist = init_distributed(self.device)
        if self.dist.enabled and cfg.batch_size % self.dist.world_size:
            raise ValueError(f"--batch-size {cfg.batch_size} must be divisible by the number of processes "
                             f"({self.dist.world_size}): every process takes an equal share of each batch")
        per_rank = cfg.batch_size // self.dist.world_size
        self.rows = slice(self.dist.rank * per_rank, (self.dist.rank + 1) * per_rank)

        from minitransformer.training.batches import (
            build_tokenizer,
            corpus_splits,
            documents_for_cache,
            init_tokenizer,
        )

        splits = corpus_splits(cfg)  # bad path / empty / not UTF-8 / a broken pairs file: errors here
        error: Exception | None = None
        made_dir = None  # True/False once rank 0 has made a fresh run folder (and whether it made the folder)
        if self.dist.is_main:  # rank 0 checks and prepares the folder, tokenizer and token cache
            try:
                saved = check_run_dir(self.run_dir, cfg, self.resume)
                if saved is None:
                    made_dir = not self.run_dir.exists()
                    create_run_dir(self.run_dir)
                    self._write_run_json()
                latest = ckpt.latest_checkpoint(self.run_dir)
                tok_path = self.run_dir / ckpt.TOKENIZER_NAME
                if latest is not None and not tok_path.is_file():
                    ckpt.atomic_link_or_copy(latest / ckpt.TOKENIZER_NAME, tok_path)
                elif not tok_path.is_file() and cfg.init_from is not None:  # the starting model's tokenizer
                    tokenizer, added = init_tokenizer(cfg, splits)
                    if added:
                        what = f"{len(added)} token{'' if len(added) == 1 else 's'}"
                        shown = " ".join(added[:40]) + (" ..." if len(added) > 40 else "")
                        self.say(f"added {what} to the tokenizer of {cfg.init_from}: {shown} (characters of the data "
                                 f"it could not write, or a marker the task needs; vocabulary now {tokenizer.vocab_size}; "
                                 "the new embedding rows start at the mean of the others)")
                    tokenizer.save(tok_path)
                elif not tok_path.is_file():  # a fresh run (or one stopped before it saved anything)
                    if cfg.tokenizer in ("bpe", "wordpiece", "unigram"):
                        self.say(f"training a {cfg.tokenizer} tokenizer ({cfg.vocab_size} tokens) on the training text")
                    build_tokenizer(cfg, splits).save(tok_path)
                self._load_data(splits, documents_for_cache, must_match=latest is not None)
            except Exception as e:  # noqa: BLE001 - re-raised below, on every process
                error = e
                if made_dir is not None:  # a fresh run failed while setting up: leave nothing behind
                    self._remove_fresh_run_dir(made_dir)
        message = broadcast_object(None if error is None else f"{type(error).__name__}: {error}", self.dist)
        if error is not None:
            raise error
        if message is not None:
            raise ValueError(message)
        if not self.dist.is_main:  # the others read what rank 0 prepared
            if cfg.lr_decay_steps is None:
                cfg.lr_decay_steps = (read_run_config(self.run_dir).lr_decay_steps if self.resume
                                      else max(cfg.max_steps, 1))
            self._load_data(splits, documents_for_cache)

        torch.manual_seed(cfg.seed)  # the same initial weights on every process, every time
        try:
            model = build_model(cfg.family, self.model_config)
        except (RuntimeError, MemoryError) as e:  # e.g. a --d-model far too large for this machine
            if made_dir is not None:
                self._remove_fresh_run_dir(made_dir)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ValueError(f"could not build the {cfg.family} model on {self.device} ({first}); "
                             "is it too large for this machine's memory?") from None
        if self._init_model is not None:  # start from trained weights (on resume the checkpoint's replace them)
            if self.model_config.vocab_size > self._init_model.config.vocab_size:
                self._init_model.resize_token_embeddings(self.model_config.vocab_size)
            trained = self._init_model.state_dict()
            if cfg.task == "classify":  # the encoder starts trained (without its pretraining heads); the head is new
                wanted = model.encoder.state_dict().keys()
                model.encoder.load_state_dict({k: v for k, v in trained.items() if k in wanted})
            else:
                model.load_state_dict(trained)
            self._init_model = None
        self.model = model.to(self.device)
        self.model.train()
        from minitransformer.optim import make_adamw

        self.optimizer = make_adamw(self.model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    betas=(cfg.beta1, cfg.beta2))
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.metrics = MetricsLog(self.run_dir, enabled=self.dist.is_main)
        self.step, self.best_val_loss = 0, float("inf")
        self.tokens_seen = 0  # training tokens so far, all processes
        self.best_saved_loss = float("inf")  # of the checkpoints written: step 0's evaluation is never one
        self.last_val: dict[str, float] = {}
        self.last_eval_step = -1
        latest = ckpt.latest_checkpoint(self.run_dir) if self.resume else None
        if latest is not None:
            state, _ = ckpt.load_checkpoint(latest, self.model, self.optimizer)
            self.step = int(state["step"])
            self.tokens_seen = int(state.get("tokens_seen", self.step * cfg.tokens_per_step))
            self.best_val_loss = float(state.get("best_val_loss", float("inf")))
            self.best_saved_loss = float(state.get("best_saved_loss", self.best_val_loss))
            self.last_val = state.get("last_val", {})
            self.last_eval_step = int(state.get("last_eval_step", -1))
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        if self.dist.is_main:
            ckpt.clean_partial(self.run_dir)
            self.metrics.truncate_after(self.step if latest is not None else -1)
            if latest is None and (self.run_dir / SAMPLES_NAME).exists():
                (self.run_dir / SAMPLES_NAME).unlink()
        barrier(self.dist)

        self.compiled = torch.compile(self.model) if cfg.compile else self.model
        self.train_model = wrap_ddp(self.compiled, self.dist, self.device)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.flops_per_token = model_flops_per_token(cfg.family, self.model_config, self.n_params, cfg.seq_len)
        self.peak_flops = None
        if cfg.measure_mfu and self.dist.is_main:
            from minitransformer.flops import measure_matmul_peak

            self.peak_flops = measure_matmul_peak(self.device, self.amp_dtype or torch.float32, seconds=0.5)

    def _remove_fresh_run_dir(self, created: bool) -> None:
        """Undo a fresh run's folder after a setup error (only what this run made)."""
        if created:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        else:  # the folder existed but was empty: empty it again
            for item in self.run_dir.iterdir():
                shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)

    def _write_run_json(self) -> None:
        import minitransformer

        info = {"config": self.cfg.to_dict(), "torch": torch.__version__,
                "minitransformer": getattr(minitransformer, "__version__", "?")}
        ckpt.atomic_write_text(self.run_dir / RUN_NAME, json.dumps(info, indent=2) + "\n")

    def _load_data(self, splits, documents_for_cache, must_match: bool = False) -> None:
        from minitransformer.finetune import ClassifierConfig
        from minitransformer.tokenizers import load_tokenizer
        from minitransformer.training.batches import make_objective
        from minitransformer.training.tokens import load_or_build_cache

        tok_path = self.run_dir / ckpt.TOKENIZER_NAME
        self.tokenizer = load_tokenizer(tok_path)
        self.tokenizer_json = tok_path.read_text(encoding="utf-8")
        data = load_or_build_cache(self.run_dir / DATA_DIR, documents_for_cache(self.cfg, splits), self.tokenizer,
                                   self.tokenizer_json, must_match=must_match)
        # A resumed run that started from a trained model has its model's config in its checkpoint (a
        # classifier's classes too); the checkpoint brings the weights, so the starting folder is not read.
        latest = ckpt.latest_checkpoint(self.run_dir) if self.resume and self.cfg.init_from is not None else None
        saved = read_model_config(latest)[1] if latest is not None else None
        self.objective: Objective = make_objective(self.cfg, data, self.tokenizer, splits,
                                                   labels=getattr(saved, "labels", None))
        self.objective.check_sizes()
        self._init_model = None  # the trained model to copy the weights from (a fresh run from init_from)
        if saved is not None:
            self.model_config = saved
            return
        if self.cfg.init_from is not None:
            self._init_model = load_init_model(self.cfg, self.cfg.init_from)
            self.model_config = fit_init_config(self.cfg, self._init_model.config, self.tokenizer.vocab_size)
            if self.cfg.task == "classify":
                self.model_config = ClassifierConfig.for_encoder(self.model_config, self.objective.labels)
            return
        try:
            self.model_config = self.objective.model_config()
        except TypeError as e:  # a model setting the family's config does not have
            raise ValueError(f"model settings {self.cfg.model} do not fit a {self.cfg.family} model: {e}") from None

    # steps ------------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def train_step(self) -> tuple[float, float]:
        """One optimizer step (all micro-batches); returns (mean loss, gradient norm)."""
        cfg = self.cfg
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(seed_from(cfg.seed, self.step, self.dist.rank, 3))  # dropout: a function of the step
        loss_sum = torch.zeros((), device=self.device)
        self.step_tokens = 0
        for micro in range(cfg.grad_accum):
            batch = self.objective.batch(TRAIN, self.step, micro, self.rows)
            # tokens of the micro-batch over all processes: an objective with padding counts its real ones
            self.step_tokens += int(batch.pop("tokens", cfg.batch_size * cfg.seq_len))
            batch = self._to_device(batch)
            last = micro == cfg.grad_accum - 1
            with maybe_no_sync(self.train_model, sync=last):  # all-reduce only on the last micro-step
                with self.autocast():
                    loss = self.objective.loss(self.train_model, batch)
                loss_sum += loss.detach().float()
                scaled = loss / cfg.grad_accum
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        mean_loss = float(all_reduce_mean(loss_sum / cfg.grad_accum, self.dist))
        if not math.isfinite(mean_loss):
            self.optimizer.zero_grad(set_to_none=True)
            latest = ckpt.latest_checkpoint(self.run_dir)
            where = (f"the last good checkpoint is {latest} (also {self.run_dir / 'model.safetensors'})"
                     if latest is not None else "no checkpoint was saved yet")
            raise TrainingDiverged(f"the loss became {mean_loss} at step {self.step + 1}; stopped without saving. "
                                   f"{where}. Try a lower --lr, more --warmup-steps or --dtype float32.")
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens_seen += self.step_tokens
        return mean_loss, float(grad_norm)

    def evaluate(self) -> dict[str, float]:
        """Validation metrics over ``eval_batches`` fixed batches (the same ones every time)."""
        return evaluate_objective(self.objective, self.model, self.compiled,
                                  self.objective.eval_batch_count(self.cfg.eval_batches), self.rows,
                                  self.device, self.autocast, self.dist)

    @torch.no_grad()
    def sample(self) -> str:
        self.model.eval()
        try:
            with self.autocast():
                return self.objective.sample(self.model, self.device)
        finally:
            self.model.train()

    def save(self) -> None:
        # "best" among the checkpoints written, judged by the validation loss at their own step
        loss_now = self.last_val.get("loss", math.inf) if self.last_eval_step == self.step else math.inf
        is_best = math.isfinite(loss_now) and loss_now <= self.best_saved_loss
        if is_best:
            self.best_saved_loss = loss_now
        cfg = self.cfg
        state = {
            "family": cfg.family, "best_val_loss": self.best_val_loss, "best_saved_loss": self.best_saved_loss,
            "last_val": self.last_val,
            "last_eval_step": self.last_eval_step,
            # the schedule is a function of the step: these numbers are all it needs
            "scheduler": {"kind": "linear warm-up, cosine decay", "next_lr": lr_at(self.step, cfg), "lr": cfg.lr,
                          "min_lr": cfg.min_lr, "warmup_steps": cfg.warmup_steps, "decay_steps": cfg.decay_steps},
            # so is the data: batch (step, micro-step) is drawn from a generator seeded by (seed, step, micro-step)
            "data_position": {"next_step": self.step, "seed": cfg.seed, "samples_seen": self.step * cfg.batch_size
                              * cfg.grad_accum},
            "tokens_seen": self.tokens_seen,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }
        if self.dist.is_main:
            ckpt.save_checkpoint(self.run_dir, self.step, self.model, self.model_config, self.cfg.family,
                                 self.optimizer, state, self.tokenizer_json, keep_last=self.cfg.keep_last,
                                 is_best=is_best)
            self.metrics.write_csv()
            if self.cfg.plot and (time.perf_counter() - self._last_plot > 30.0 or self.step >= self.cfg.max_steps):
                self.plot()
        barrier(self.dist)

    def plot(self) -> None:
        """Redraw ``loss.png`` (at the end, and at checkpoints at most every 30 s: plotting is slow)."""
        self.metrics.plot(title=f"{self.cfg.family} · {self.cfg.preset} · {self.run_dir.name}")
        self._last_plot = time.perf_counter()

    def _record_sample(self) -> str:
        text = self.sample()
        if self.dist.is_main:
            with open(self.run_dir / SAMPLES_NAME, "a", encoding="utf-8") as f:
                f.write(f"=== step {self.step} ===\n{text}\n\n")
        return text

    def _eval_and_log(self) -> None:
        val = self.evaluate()
        self.last_val, self.last_eval_step = val, self.step
        self.best_val_loss = min(self.best_val_loss, val["loss"])
        self.metrics.log({"step": self.step, "split": "val", **val})
        extras = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in val.items() if k != "loss")
        self.say(f"step {self.step}: val loss {val['loss']:.4f}" + (f" ({extras})" if extras else ""))

    # the loop ---------------------------------------------------------------------------------
    def run(self) -> TrainResult:
        self.setup()
        cfg = self.cfg
        samples: list[str] = []
        if self.dist.is_main:
            where = f"{self.dist.world_size} processes" if self.dist.enabled else str(self.device)
            precision = str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "float32"
            self.say(f"{cfg.family} ({cfg.preset}): {self.n_params / 1e6:.2f}M parameters, vocabulary "
                     f"{self.tokenizer.vocab_size}, {len(self.objective.data['train']):,} training tokens; "
                     f"{where}, {precision}; run folder {self.run_dir}")
            for note in self.objective.notes():
                self.say(f"note: {note}")
            if self.step:
                self.say(f"resuming at step {self.step}")
            if self.step >= cfg.max_steps:
                self.say(f"nothing to train: the run is at step {self.step} and --max-steps is {cfg.max_steps} "
                         "(give a larger --max-steps to continue it)")
            elif cfg.max_steps > cfg.decay_steps:  # e.g. --max-steps grown on --resume
                self.say(f"note: the learning rate's cosine decay ends at step {cfg.decay_steps} (--lr-decay-steps); "
                         f"steps {cfg.decay_steps}-{cfg.max_steps} run at --min-lr {cfg.min_lr:g}")
        if self.step == 0 and self.step < cfg.max_steps:
            self._eval_and_log()
        sample_every = cfg.eval_every if cfg.sample_every is None else cfg.sample_every

        from tqdm.auto import tqdm

        self.bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not (cfg.progress and self.dist.is_main),
                        desc=f"{cfg.family} {'pretraining' if cfg.task == 'pretrain' else 'fine-tuning'}",
                        unit="step", dynamic_ncols=True)
        interval_tokens, interval_time = 0, 0.0
        rate, train_seconds = 0.0, 0.0
        try:
            while self.step < cfg.max_steps:
                t0 = time.perf_counter()
                loss, grad_norm = self.train_step()
                dt = time.perf_counter() - t0
                train_seconds += dt
                interval_tokens += self.step_tokens
                interval_time += dt
                rate = self.step_tokens / dt if rate == 0 else 0.9 * rate + 0.1 * self.step_tokens / dt
                self.bar.update(1)
                self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{rate:,.0f}", refresh=False)
                done = self.step == cfg.max_steps
                if self.step % cfg.log_every == 0 or done:
                    event: dict[str, Any] = {"step": self.step, "split": "train", "loss": loss,
                                             "lr": lr_at(self.step - 1, cfg), "grad_norm": grad_norm,
                                             "tokens": self.tokens_seen,
                                             "tokens_per_s": interval_tokens / max(interval_time, 1e-9)}
                    if self.peak_flops:
                        from minitransformer.flops import mfu

                        event["mfu"] = mfu(event["tokens_per_s"], self.flops_per_token, self.peak_flops)
                    self.metrics.log(event)
                    interval_tokens, interval_time = 0, 0.0
                if self.step % cfg.eval_every == 0 or done:
                    self._eval_and_log()
                if (sample_every and self.step % sample_every == 0) or done:
                    text = self._record_sample()
                    samples.append(text)
                    self.say(f"--- sample at step {self.step} ---\n{text}\n---")
                if self.step % cfg.save_every == 0 or done:
                    self.save()
        finally:
            self.bar.close()
            self.bar = None
        return TrainResult(self.run_dir, self.step, self.last_val, self.best_val_loss, samples, self.dist.is_main,
                           train_seconds)


def train(cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool = False,
          say: Callable[[str], None] | None = None) -> TrainResult:
    """Run pretraining (see ``Trainer``); returns the final step and validation metrics."""
    from minitransformer.training.distributed import shutdown_distributed

    try:
        return Trainer(cfg, run_dir, resume=resume, say=say).run()
    finally:
        shutdown_distributed()


# ---- reading a finished run back ---------------------------------------------------------------

def load_run(run_dir: str | os.PathLike, device: str = "auto"):
    """(TrainConfig, model in eval mode, tokenizer) of a run folder's latest saved model."""
    from minitransformer.interop.files import load_state_dict_checked, load_weights
    from minitransformer.tokenizers import load_tokenizer

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    family, config = read_model_config(run_dir)  # (a fine-tuned classifier's too)
    cfg = read_run_config(run_dir) if (run_dir / RUN_NAME).is_file() else TrainConfig(family=family)
    if cfg.family != family:
        raise ValueError(f"{run_dir}: {RUN_NAME} is a {cfg.family} run but config.json holds a {family} model")
    tokenizer = load_tokenizer(run_dir / ckpt.TOKENIZER_NAME)
    model = build_model(family, config)
    load_state_dict_checked(model, load_weights(run_dir))
    return cfg, model.to(resolve_device(device)).eval(), tokenizer


def _for_seq_len(cfg: TrainConfig, model: nn.Module, seq_len: int) -> tuple[TrainConfig, nn.Module]:
    """The run's config and model set to score windows of ``seq_len`` tokens (evaluate_run's ``seq_len``)."""
    check_int("seq_len", seq_len, 2)
    if cfg.family != "gpt" or cfg.task != "pretrain":
        raise ValueError(f"seq_len applies to a pretrained GPT's windows of text; this is a {cfg.family} "
                         f"{cfg.task} run")
    config = model.config
    if seq_len > config.max_seq_len:
        if config.position == "learned":
            raise ValueError(f"this GPT learned one vector for each of its {config.max_seq_len} positions, so it "
                             f"cannot read {seq_len} tokens; a GPT with position sinusoidal, rope or alibi can "
                             "(no weight depends on the length)")
        longer = build_model("gpt", dataclasses.replace(config, max_seq_len=seq_len))
        longer.load_state_dict(model.state_dict())
        model = longer.to(next(model.parameters()).device).eval()
    return dataclasses.replace(cfg, seq_len=seq_len), model


def evaluate_run(run_dir: str | os.PathLike, device: str = "auto", batches: int | None = None,
                 dtype: str = "float32", corpus: str | None = None, seq_len: int | None = None) -> dict[str, float]:
    """Validation metrics of a run folder's saved model on the run's own validation split.

    ``corpus`` (a file, folder, glob or "shakespeare", as for ``pretrain --corpus``) scores another
    text instead: all of it plays the validation split, tokenized with the run's tokenizer, and the
    examples are drawn from it as the run draws its validation examples. ``seq_len`` (a pretrained
    GPT) scores windows of that many tokens instead of the run's: longer than the model was trained
    on, too, if its position scheme has no table of positions (sinusoidal, rope, alibi), which
    shows how each scheme extrapolates. Nothing is written.
    """
    from minitransformer.training.batches import (
        corpus_documents,
        corpus_splits,
        documents_for_cache,
        make_objective,
    )
    from minitransformer.training.tokens import fast_encoder, load_or_build_cache, tokenize_documents

    run_dir = Path(run_dir)
    cfg, model, tokenizer = load_run(run_dir, device)
    if not (run_dir / RUN_NAME).is_file():
        raise ValueError(f"{run_dir} has a model but no {RUN_NAME}: it was not written by `minitransformer pretrain` "
                         "or `finetune`")
    labels = getattr(model.config, "labels", None)  # a classifier's classes
    if seq_len is not None:
        cfg, model = _for_seq_len(cfg, model, seq_len)
    if corpus is None:
        splits = corpus_splits(cfg)
        # must_match: a corpus file edited since training is an error, not a new cache written over the run's
        data = load_or_build_cache(run_dir / DATA_DIR, documents_for_cache(cfg, splits), tokenizer,
                                   (run_dir / ckpt.TOKENIZER_NAME).read_text(encoding="utf-8"), must_match=True)
    else:
        cfg = dataclasses.replace(cfg, corpus=corpus)  # the corpus also decides how BERT cuts documents
        if cfg.task != "pretrain":  # all pairs of the file (of a built-in task: its held-out ones)
            from minitransformer.data.pairs import BUILTIN_TASKS, builtin_task, read_pairs

            texts = builtin_task(corpus)[1] if corpus in BUILTIN_TASKS else read_pairs(corpus)
        else:
            texts = corpus_documents(corpus)
        splits = {"val": texts}
        documents = documents_for_cache(cfg, splits)["val"]
        try:
            encode = fast_encoder(tokenizer, probe="\n".join(documents[0] if documents else [])[:4000])
            split = tokenize_documents(documents, encode, tokenizer.vocab_size)
        except ValueError as e:  # e.g. a character the run's character tokenizer never saw
            raise ValueError(f"the run's tokenizer cannot encode {corpus}: {e}") from None
        data = {"val": split}  # what evaluation reads
    objective = make_objective(cfg, data, tokenizer, splits, labels)
    if corpus is None:
        objective.check_sizes()
    else:
        try:
            objective.check_sizes(advice="")  # (a shorter --seq-len is advice for pretraining, not here)
        except ValueError as e:
            raise ValueError(f"{corpus} is too small to score with this run ({e})") from None
    dev = next(model.parameters()).device
    amp = resolve_dtype(dtype, dev)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast(device_type=dev.type, dtype=amp) if amp is not None else contextlib.nullcontext()

    metrics = evaluate_objective(objective, model, model, objective.eval_batch_count(batches or cfg.eval_batches),
                                 slice(None), dev, autocast)
    model.eval()
    return metrics
