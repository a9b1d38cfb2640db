"""Fine-tuning a BERT encoder for sequence classification (Devlin et al. 2019 §4.1, App. A.3).

A pretrained encoder gets one new layer: a linear classifier on a vector per sequence (the
pooled ``[CLS]`` output, or the mean of the token vectors), and the whole model is trained a
little on labelled examples with a small learning rate, warm-up, linear decay and AdamW.

    task = make_play_classification()                       # minitransformer.data
    encoder = SentenceEncoder.from_pretrained()             # all-MiniLM-L6-v2, or any Bert + tokenizer
    model = SequenceClassifier(encoder.model, n_classes=len(task.labels))
    result = finetune_classifier(model, encoder.tokenizer, task.train, task.test,
                                 FinetuneConfig(time_budget_s=120))
    result.test_accuracy
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer.checks import check_int, check_number, check_texts
from minitransformer.embedding_search import mean_pool
from minitransformer.models.bert import Bert
from minitransformer.models.config import BertConfig
from minitransformer.models.heads import ClassificationHead
from minitransformer.optim import make_adamw
from minitransformer.tokenizers.base import Tokenizer, pad_sequences

POOLINGS = ("cls", "mean")


@dataclass
class ClassifierConfig:
    """What a saved ``SequenceClassifier`` is: its encoder's ``BertConfig``, the names of its classes
    (class i is ``labels[i]``), the pooling and the head's dropout. ``config.json`` of a classifier's
    folder holds ``to_dict()`` (with ``"task": "classify"``, so it is never read as a plain BERT)."""

    encoder: BertConfig
    labels: list[str]
    pooling: str = "cls"
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, BertConfig):
            raise TypeError(f"encoder must be a BertConfig, got {type(self.encoder).__name__}")
        if (not isinstance(self.labels, list) or len(self.labels) < 2 or len(set(self.labels)) != len(self.labels)
                or not all(isinstance(x, str) for x in self.labels)):
            raise ValueError(f"labels must be a list of at least 2 different class names, got {self.labels!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(map(repr, POOLINGS))}, got {self.pooling!r}")
        check_number("dropout", self.dropout, 0, 1, high_open=True)

    @classmethod
    def for_encoder(cls, encoder: BertConfig, labels: list[str]) -> ClassifierConfig:
        """A classifier on a trained BERT with config ``encoder``: its pretraining heads dropped, the pooled
        ``[CLS]`` vector if it has a pooler (else the mean of the tokens), its dropout for the head too."""
        pooling = "cls" if encoder.pooler else "mean"
        encoder = dataclasses.replace(encoder, mlm_head=False, nsp_head=False, discriminator_head=False)
        return cls(encoder, list(labels), pooling, dropout=encoder.dropout)

    @property
    def vocab_size(self) -> int:
        return self.encoder.vocab_size

    @property
    def max_seq_len(self) -> int:
        return self.encoder.max_seq_len

    def to_dict(self) -> dict:
        return {"task": "classify", "labels": list(self.labels), "pooling": self.pooling, "dropout": self.dropout,
                "encoder": self.encoder.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        if not isinstance(data, dict) or data.get("task") != "classify" or not isinstance(data.get("encoder"), dict):
            raise ValueError("not a classifier's config (it needs \"task\": \"classify\" and an \"encoder\")")
        return cls(BertConfig.from_dict(data["encoder"]), list(data.get("labels", [])), data.get("pooling", "cls"),
                   data.get("dropout", 0.1))


@dataclass
class ClassifierOutput:
    logits: torch.Tensor  # (B, n_classes)
    loss: torch.Tensor | None = None


class SequenceClassifier(nn.Module):
    """A ``Bert`` encoder + ``ClassificationHead`` on one vector per sequence.

    ``pooling="cls"``: the pooler's output (dense + tanh on ``[CLS]``), as in BERT §4.1;
    ``"mean"``: the mean of the last hidden states over real tokens, as sentence encoders are
    trained (Reimers & Gurevych 2019). The encoder's pretraining heads are not used.
    """

    def __init__(self, encoder: Bert, n_classes: int, dropout: float = 0.1, pooling: str = "cls") -> None:
        super().__init__()
        if not isinstance(encoder, Bert):
            raise TypeError(f"encoder must be a minitransformer Bert, got {type(encoder).__name__}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(map(repr, POOLINGS))}, got {pooling!r}")
        if pooling == "cls" and encoder.pooler is None:
            raise ValueError("pooling='cls' needs an encoder with a pooler (BertConfig.pooler=True); use 'mean'")
        self.encoder = encoder
        self.pooling = pooling
        self.n_classes = n_classes
        self.head = ClassificationHead(encoder.config.d_model, n_classes, dropout)
        nn.init.normal_(self.head.classifier.weight, std=0.02)
        nn.init.zeros_(self.head.classifier.bias)

    @classmethod
    def from_config(cls, config: ClassifierConfig) -> SequenceClassifier:
        """A fresh classifier (random weights) for ``config``: ``Bert(config.encoder)`` and a head per class.
        ``model.config`` is then ``config`` (the class names with it)."""
        model = cls(Bert(config.encoder), len(config.labels), config.dropout, config.pooling)
        model.config = config
        return model

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> ClassifierOutput:
        hidden, _ = self.encoder.encode(input_ids, token_type_ids, attention_mask)  # (B, T, C)
        if self.pooling == "cls":
            pooled = self.encoder.pooler(hidden)  # (B, C)
        else:
            mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
            pooled = mean_pool(hidden, mask)
        logits = self.head(pooled)  # (B, n_classes)
        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:1] or labels.dtype != torch.long:
                raise ValueError(f"labels must be a long tensor of shape ({logits.shape[0]},), "
                                 f"got {labels.dtype} {tuple(labels.shape)}")
            if bool(((labels < 0) | (labels >= self.n_classes)).any()):
                raise ValueError(f"labels must be class indices in [0, {self.n_classes})")
            loss = F.cross_entropy(logits, labels)
        return ClassifierOutput(logits, loss)


@dataclass
class FinetuneConfig:
    """Hyper-parameters; defaults follow BERT's fine-tuning recipe (App. A.3) at a small scale."""

    lr: float = 5e-5
    batch_size: int = 32
    epochs: float = 3.0
    max_steps: int | None = None  # stop after this many steps (None: epochs decide)
    time_budget_s: float | None = None  # train this many seconds; the learning-rate schedule follows the clock
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128  # tokens per example, [CLS] and [SEP] included
    grad_clip: float = 1.0
    seed: int = 0
    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("lr", "epochs", "grad_clip"):  # a negative clip norm flips the gradients, 0 freezes them
            check_number(f"FinetuneConfig.{name}", getattr(self, name), 0, low_open=True)
        check_number("FinetuneConfig.weight_decay", self.weight_decay, 0)
        if self.time_budget_s is not None:  # 0: one step
            check_number("FinetuneConfig.time_budget_s", self.time_budget_s, 0)
        for name in ("batch_size", "max_length", "eval_batch_size"):
            check_int(f"FinetuneConfig.{name}", getattr(self, name), 1)
        if self.max_steps is not None:
            check_int("FinetuneConfig.max_steps", self.max_steps, 1)
        check_number("FinetuneConfig.warmup_fraction", self.warmup_fraction, 0, 1, high_open=True)


@dataclass
class FinetuneResult:
    steps: int
    seconds: float
    train_losses: list[float] = field(default_factory=list)  # one per step
    test_accuracy: float | None = None


def encode_examples(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """``[CLS] text [SEP]`` ids per text, cut to ``max_length`` tokens."""
    return [tokenizer.encode_pair(t, max_length=max_length)["input_ids"] for t in check_texts("texts", texts)]


def _batch(tokenizer: Tokenizer, ids: list[list[int]], rows: Sequence[int],
           device: torch.device) -> dict[str, torch.Tensor]:
    batch = pad_sequences([ids[i] for i in rows], tokenizer.pad_token_id or 0)
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def predict(model: SequenceClassifier, tokenizer: Tokenizer, texts: Sequence[str], max_length: int = 128,
            batch_size: int = 64) -> torch.Tensor:
    """Predicted class index of each text, (N,) long. Batches texts of similar length together."""
    check_int("batch_size", batch_size, 1)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = encode_examples(tokenizer, texts, max_length)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.empty(len(ids), dtype=torch.long)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        b = _batch(tokenizer, ids, rows, device)
        out[rows] = model(b["input_ids"], attention_mask=b["attention_mask"]).logits.argmax(-1).cpu()
    model.train(was_training)
    return out


def accuracy(model: SequenceClassifier, tokenizer: Tokenizer, examples: Sequence[tuple[str, int]],
             max_length: int = 128, batch_size: int = 64) -> float:
    """Fraction of ``(text, label)`` examples whose predicted class is the label."""
    if not examples:
        raise ValueError("no examples to evaluate")
    predicted = predict(model, tokenizer, [t for t, _ in examples], max_length, batch_size)
    return float((predicted == torch.tensor([y for _, y in examples])).float().mean())


def lr_factor(progress: float, warmup_fraction: float, first: float) -> float:
    """Learning-rate multiplier at ``progress`` in [0, 1): linear warm-up, then linear decay to 0.

    ``first`` is the progress one step makes, so the first step already learns a little.
    """
    if progress < warmup_fraction:
        return (progress + first) / (warmup_fraction + first)
    return max(0.0, (1.0 - progress) / (1.0 - warmup_fraction))


def finetune_classifier(model: SequenceClassifier, tokenizer: Tokenizer, train: Sequence[tuple[str, int]],
                        test: Sequence[tuple[str, int]] | None = None,
                        config: FinetuneConfig | None = None) -> FinetuneResult:
    """Train ``model`` on ``(text, label)`` pairs; report the test accuracy if ``test`` is given.

    AdamW (β = 0.9, 0.999; no decay on biases, norms, embeddings), learning rate warmed up
    linearly over ``warmup_fraction`` of the run then decayed linearly to 0 (the run is the planned
    steps, or the time budget if one is set: whichever ends first stops training), gradient norm
    clipped, dropout on. Examples are shuffled each epoch with ``seed``.
    """
    cfg = config or FinetuneConfig()
    if not train:
        raise ValueError("no training examples")
    for split, examples in (("training", train), ("test", test or [])):  # every example: 1.7 is not a class
        for text, label in examples:
            if not isinstance(text, str) or isinstance(label, bool) or not isinstance(label, int):
                raise TypeError(f"{split} examples must be (str, int) pairs, got "
                                f"({type(text).__name__}, {type(label).__name__})")
            if not 0 <= label < model.n_classes:
                raise ValueError(f"{split} labels must be in [0, {model.n_classes}), got {label}")
    labels = torch.tensor([y for _, y in train], dtype=torch.long)
    device = next(model.parameters()).device
    ids = encode_examples(tokenizer, [t for t, _ in train], cfg.max_length)
    steps_per_epoch = math.ceil(len(ids) / cfg.batch_size)
    planned = math.ceil(cfg.epochs * steps_per_epoch)
    if cfg.max_steps is not None:
        planned = min(planned, cfg.max_steps)

    optimizer = make_adamw(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
    generator = torch.Generator().manual_seed(cfg.seed)
    result = FinetuneResult(steps=0, seconds=0.0)
    model.train()
    start = time.perf_counter()
    order: list[int] = []
    while result.steps < planned:
        # How far along we are, in [0, 1): by steps, or by the clock when there is a time budget
        # (so warm-up and decay fit the budget however fast the machine is at the moment).
        progress = result.steps / planned
        if cfg.time_budget_s is not None:
            elapsed = time.perf_counter() - start
            if elapsed >= cfg.time_budget_s and result.steps > 0:
                break
            progress = max(progress, elapsed / cfg.time_budget_s) if cfg.time_budget_s > 0 else 0.0
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(progress, cfg.warmup_fraction, 1.0 / planned)
        if not order:
            order = torch.randperm(len(ids), generator=generator).tolist()
        rows, order = order[:cfg.batch_size], order[cfg.batch_size:]
        b = _batch(tokenizer, ids, rows, device)
        out = model(b["input_ids"], attention_mask=b["attention_mask"], labels=labels[rows].to(device))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        result.steps += 1
        result.train_losses.append(out.loss.item())
    result.seconds = time.perf_counter() - start
    if test:
        result.test_accuracy = accuracy(model, tokenizer, test, cfg.max_length, cfg.eval_batch_size)
    return result


__all__ = ["SequenceClassifier", "ClassifierOutput", "FinetuneConfig", "FinetuneResult", "finetune_classifier",
           "predict", "accuracy", "encode_examples"]
