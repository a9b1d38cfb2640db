"""Text-to-text transfer with T5: pretrain with span corruption, fine-tune on tasks, evaluate.

T5 casts every task as "text in, text out" (Raffel et al. 2020, §2.4): the input carries a task
prefix ("translate English to SQL: ..."), the target is the answer as text, and one model with
one loss (cross-entropy on the target tokens) learns them all. Transfer comes from unsupervised
pretraining first: span corruption (§3.1.4) hides ~15% of the tokens in short spans, each replaced
by a sentinel, and the decoder writes the hidden spans back.

    tok = train_tokenizer(texts, vocab_size=2000)             # Unigram, T5's <pad> </s> <unk> sentinels
    model = T5(T5Config(vocab_size=tok.vocab_size, ...))
    pretrain_span_corruption(model, tok, load_corpus("shakespeare"), TrainSettings(steps=500))
    finetune(model, tok, task.train, TrainSettings(steps=500))
    evaluate(model, tok, task.heldout, database=task.database)   # exact match, word accuracy (+ execution)

Everything runs offline on a CPU; ``benchmarks/t5_text_to_text.py`` runs the whole recipe.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from minitransformer.checks import check_int, check_number, check_texts
from minitransformer.data.span_corruption import span_corruption_batch
from minitransformer.data.sql_task import SqlDatabase, execution_match
from minitransformer.data.tasks import TextPair
from minitransformer.models.t5 import IGNORE_INDEX, T5
from minitransformer.optim import make_adamw
from minitransformer.tokenizers import T5_SPECIAL_TOKENS, Tokenizer, UnigramTokenizer

Batch = dict[str, torch.Tensor]


# ---- tokenizer -----------------------------------------------------------------------------
def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000, backend: str = "hf") -> UnigramTokenizer:
    """A Unigram tokenizer (T5's kind) with T5's special tokens: ``<pad>``=0, ``</s>``=1, ``<unk>``=2,
    then the sentinels ``<extra_id_0>`` ... ``<extra_id_99>``. ``backend="hf"`` trains in seconds."""
    return UnigramTokenizer.train(list(texts), vocab_size=vocab_size, special_tokens=T5_SPECIAL_TOKENS,
                                  backend=backend)


@dataclass(frozen=True)
class SpecialIds:
    """The ids T5 needs from a tokenizer."""

    pad: int
    eos: int
    sentinels: list[int]


def special_ids(tokenizer: Tokenizer, model: T5 | None = None) -> SpecialIds:
    """``<pad>``, ``</s>`` and the sentinels' ids; with ``model``, check they fit it.

    ValueError if a token is missing, if pad/eos disagree with the model's config, or if any id
    (a sentinel, typically) lies outside the model's vocabulary, which would otherwise only fail
    deep inside the embedding lookup, or worse, silently on another device.
    """
    ids = {}
    for token in ("<pad>", "</s>"):
        idx = tokenizer.token_to_id(token)
        if idx is None:
            raise ValueError(f"the tokenizer has no {token!r} token; T5 needs <pad>, </s> and <extra_id_N> sentinels")
        ids[token] = idx
    sentinels = []
    for k in range(1000):
        idx = tokenizer.token_to_id(f"<extra_id_{k}>")
        if idx is None:
            break
        sentinels.append(idx)
    if not sentinels:
        raise ValueError("the tokenizer has no sentinel tokens <extra_id_0>, <extra_id_1>, ...")
    out = SpecialIds(pad=ids["<pad>"], eos=ids["</s>"], sentinels=sentinels)
    if model is not None:
        cfg = model.config
        if out.pad != cfg.pad_token_id or out.eos != cfg.eos_token_id:
            raise ValueError(f"tokenizer pad/eos ids ({out.pad}, {out.eos}) differ from the model's "
                             f"pad_token_id/eos_token_id ({cfg.pad_token_id}, {cfg.eos_token_id})")
        if tokenizer.vocab_size > cfg.vocab_size:
            bad = [k for k, s in enumerate(sentinels) if s >= cfg.vocab_size]
            what = f"sentinel <extra_id_{bad[0]}> has id {sentinels[bad[0]]}" if bad else "some ids are"
            raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                             f"vocab_size={cfg.vocab_size}: {what} outside the model's vocabulary")
    return out


# ---- batches -------------------------------------------------------------------------------
def encode_pairs(tokenizer: Tokenizer, pairs: Sequence[TextPair], max_source_len: int = 64,
                 max_target_len: int = 64) -> Batch:
    """Text pairs -> ``input_ids``, ``attention_mask`` (B, S) and ``labels`` (B, T), right-padded.

    Source and target each end with ``</s>`` (kept when cutting to the maximum length); padded
    label positions are -100, so the loss ignores them.
    """
    sp = special_ids(tokenizer)
    if not pairs:
        raise ValueError("encode_pairs needs at least one pair")
    if not all(isinstance(p, TextPair) for p in pairs):
        raise TypeError("encode_pairs needs TextPair(source, target) items")
    check_int("max_source_len", max_source_len, 1)
    check_int("max_target_len", max_target_len, 1)

    def encode(text: str, limit: int) -> list[int]:
        return tokenizer.encode(text)[: limit - 1] + [sp.eos]

    sources = [encode(p.source, max_source_len) for p in pairs]
    targets = [encode(p.target, max_target_len) for p in pairs]
    S, T = max(map(len, sources)), max(map(len, targets))
    input_ids = torch.full((len(pairs), S), sp.pad, dtype=torch.long)
    labels = torch.full((len(pairs), T), IGNORE_INDEX, dtype=torch.long)
    for i, (s, t) in enumerate(zip(sources, targets, strict=True)):
        input_ids[i, : len(s)] = torch.tensor(s)
        labels[i, : len(t)] = torch.tensor(t)
    mask = torch.zeros_like(input_ids)
    for i, s in enumerate(sources):
        mask[i, : len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def span_corruption_examples(tokenizer: Tokenizer, text: str, inputs_length: int = 64,
                             generator: torch.Generator | None = None) -> Batch:
    """The whole ``text`` as span-corruption rows: ``input_ids`` (N, inputs_length) and ``labels``.

    Uses ``minitransformer.data.span_corruption`` (noise density 0.15, mean span 3, as T5).
    """
    sp = special_ids(tokenizer)
    return _corrupt(_encode_running_text(tokenizer, text), sp, inputs_length, generator)


def _encode_running_text(tokenizer: Tokenizer, text: str) -> list[int]:
    """A whole text -> ids, line breaks read as spaces (as T5's SentencePiece model reads them).

    ``train_tokenizer`` learns from lines, so it has no piece for a line break, which would
    otherwise become ``<unk>`` (in verse, one token in eight) and glue the next line's first word
    to it without a word start.
    """
    return tokenizer.encode(" ".join(text.split()))


def _corrupt(ids: list[int], sp: SpecialIds, inputs_length: int, generator: torch.Generator | None) -> Batch:
    """Token ids -> one span corruption of all of them, as rows of ``inputs_length`` input tokens."""
    input_ids, labels = span_corruption_batch(ids, inputs_length, sp.sentinels, sp.eos, sp.pad, generator=generator)
    return {"input_ids": input_ids, "attention_mask": (input_ids != sp.pad).long(), "labels": labels}


def _rows(batch: Batch, index: Sequence[int]) -> Batch:
    """Select rows and trim trailing all-padding columns."""
    out = {k: v[list(index)] for k, v in batch.items()}
    s = int(out["attention_mask"].sum(dim=1).max())
    t = int((out["labels"] != IGNORE_INDEX).sum(dim=1).max())
    out["input_ids"], out["attention_mask"] = out["input_ids"][:, :s], out["attention_mask"][:, :s]
    out["labels"] = out["labels"][:, :t]
    return out


def shuffled_batches(source: Batch | Callable[[], Batch], batch_size: int, seed: int = 0) -> Callable[[], Batch]:
    """A function giving the next batch of an endless stream of shuffled passes over ``source``'s rows.

    ``source`` is a batch of rows, or a function called at the start of every pass for that pass's
    rows (span corruption draws new spans that way). Rows left over at the end of a pass (fewer than
    ``batch_size``) are dropped.
    """
    check_int("batch_size", batch_size, 1)
    rng = random.Random(seed)
    data: Batch = {}
    order: list[int] = []

    def next_batch() -> Batch:
        nonlocal data, order
        if len(order) < batch_size:  # a new pass
            data = source() if callable(source) else source
            order = list(range(data["input_ids"].shape[0]))
            if not order:
                raise ValueError("shuffled_batches: the source has no rows")
            rng.shuffle(order)
        rows, order = order[:batch_size], order[batch_size:]
        return _rows(data, rows)

    return next_batch


# ---- training ------------------------------------------------------------------------------
@dataclass
class TrainSettings:
    """How long and how fast to train: AdamW, linear warm-up, then cosine decay to 10% of ``lr``
    (the cosine follows the whole run's progress, so it starts just below ``lr`` after warm-up).

    Training ends after ``steps`` steps or ``time_budget_s`` seconds, whichever comes first; the
    decay follows whichever is further along, so a time-limited run still ends at the low rate.
    """

    steps: int = 500
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    time_budget_s: float | None = None
    seed: int = 0
    log_every: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            check_int(name, getattr(self, name), 1)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_number("lr", self.lr, 0, low_open=True)
        check_number("weight_decay", self.weight_decay, 0)
        if self.time_budget_s is not None:
            check_number("time_budget_s", self.time_budget_s, 0, low_open=True)

    def progress(self, step: int, elapsed_s: float) -> float:
        """How far along training is, in [0, 1]."""
        done = step / self.steps
        if self.time_budget_s is not None:
            done = max(done, elapsed_s / self.time_budget_s)
        return min(1.0, done)

    def lr_at(self, step: int, elapsed_s: float = 0.0) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * self.progress(step, elapsed_s))))


def train(model: T5, next_batch: Callable[[], Batch], settings: TrainSettings,
          log: Callable[[str], None] | None = print) -> list[float]:
    """Train ``model`` on batches from ``next_batch``; returns the loss of every step taken."""
    model.train()
    device = next(model.parameters()).device
    torch.manual_seed(settings.seed)
    opt = make_adamw(model, lr=settings.lr, weight_decay=settings.weight_decay, betas=(0.9, 0.99))
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(settings.steps):
        elapsed = time.perf_counter() - start
        if settings.progress(step, elapsed) >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = settings.lr_at(step, elapsed)
        b = {k: v.to(device) for k, v in next_batch().items()}  # batches are built on the CPU
        loss = model(b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log is not None and (step + 1) % settings.log_every == 0:
            recent = losses[-settings.log_every:]
            log(f"step {step + 1}: loss {sum(recent) / len(recent):.3f} ({time.perf_counter() - start:.0f}s)")
    model.eval()
    return losses


def pretrain_span_corruption(model: T5, tokenizer: Tokenizer, text: str, settings: TrainSettings,
                             inputs_length: int = 64, log: Callable[[str], None] | None = print) -> list[float]:
    """Span-corruption pretraining (Raffel et al. 2020 §3.1.4) on ``text``; returns the step losses.

    The spans are drawn afresh for every pass over the text ("dynamic" corruption, as RoBERTa
    re-masks each epoch). With one fixed corruption, a small model that sees the same rows for
    many epochs learns their hidden spans by heart, and its loss on freshly corrupted text rises
    while its training loss falls; it never learns to read the context around a gap.
    """
    special_ids(tokenizer, model)
    batches = span_corruption_stream(tokenizer, text, settings.batch_size, inputs_length, settings.seed)
    return train(model, batches, settings, log)


def span_corruption_stream(tokenizer: Tokenizer, text: str, batch_size: int, inputs_length: int = 64,
                           seed: int = 0) -> Callable[[], Batch]:
    """An endless stream of shuffled span-corruption batches of ``text``, with new spans on every pass."""
    sp = special_ids(tokenizer)
    ids = _encode_running_text(tokenizer, text)
    generator = torch.Generator().manual_seed(seed)
    return shuffled_batches(lambda: _corrupt(ids, sp, inputs_length, generator), batch_size, seed)


def finetune(model: T5, tokenizer: Tokenizer, pairs: Sequence[TextPair], settings: TrainSettings,
             max_source_len: int = 64, max_target_len: int = 64,
             log: Callable[[str], None] | None = print) -> list[float]:
    """Fine-tune on (source, target) text pairs with the same loss as pretraining."""
    special_ids(tokenizer, model)
    data = encode_pairs(tokenizer, pairs, max_source_len, max_target_len)
    return train(model, shuffled_batches(data, settings.batch_size, settings.seed), settings, log)


# ---- inference and metrics -----------------------------------------------------------------
@torch.no_grad()
def predict(model: T5, tokenizer: Tokenizer, sources: Sequence[str], max_new_tokens: int = 64,
            num_beams: int = 1, batch_size: int = 64, max_source_len: int = 64) -> list[str]:
    """Generate an answer for each source text (greedy or beam search), decoded to text."""
    sp = special_ids(tokenizer, model)
    check_texts("sources", sources)
    check_int("batch_size", batch_size, 1)
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for i in range(0, len(sources), batch_size):
        chunk = [TextPair(s, "") for s in sources[i:i + batch_size]]
        b = {k: v.to(device) for k, v in encode_pairs(tokenizer, chunk, max_source_len, 2).items()}
        ids = model.generate(b["input_ids"], attention_mask=b["attention_mask"], max_new_tokens=max_new_tokens,
                             num_beams=num_beams)
        for row in ids[:, 1:].tolist():  # drop the decoder start token
            row = row[: row.index(sp.eos)] if sp.eos in row else row
            out.append(tokenizer.decode(row, skip_special_tokens=True))
    return out


def word_accuracy(predictions: Sequence[str], targets: Sequence[str]) -> float:
    """Words in the right place, over all lines: a softer score than exact match.

    Each line is split on whitespace; a predicted word counts if it equals the target's word at the
    same position. The denominator is the longer of the two lines, so a missing or an extra word
    costs as much as a wrong one, and the score is 1 exactly when every line has the target's words.
    Exact match gives no credit to a ten-word line with one word wrong; this does.
    """
    check_texts("predictions", predictions)
    check_texts("targets", targets)
    if len(predictions) != len(targets):
        raise ValueError(f"got {len(predictions)} predictions for {len(targets)} targets")
    right = total = 0
    for pred, target in zip(predictions, targets, strict=True):
        p, t = pred.split(), target.split()
        right += sum(a == b for a, b in zip(p, t, strict=False))  # the shorter line decides; the rest count as wrong
        total += max(len(p), len(t))
    return right / total if total else 1.0


def evaluate(model: T5, tokenizer: Tokenizer, pairs: Sequence[TextPair], database: SqlDatabase | None = None,
             max_new_tokens: int = 64, num_beams: int = 1, max_source_len: int = 64) -> dict:
    """Exact match, word accuracy (and, with a ``database``, SQL execution accuracy) of the model's answers.

    Returns ``{"n", "exact_match", "word_accuracy", "execution_accuracy" (or None),
    "examples": [(source, target, prediction)]}``.
    """
    if not pairs:
        raise ValueError("evaluate needs at least one pair")
    preds = predict(model, tokenizer, [p.source for p in pairs], max_new_tokens, num_beams,
                    max_source_len=max_source_len)
    exact = sum(p == x.target for p, x in zip(preds, pairs, strict=True)) / len(pairs)
    execution = None
    if database is not None:
        execution = sum(execution_match(p, x.target, database) for p, x in zip(preds, pairs, strict=True)) / len(pairs)
    return {"n": len(pairs), "exact_match": exact, "word_accuracy": word_accuracy(preds, [x.target for x in pairs]),
            "execution_accuracy": execution,
            "examples": [(x.source, x.target, p) for x, p in zip(pairs, preds, strict=True)]}
