"""From a corpus to batches: the only family-specific part of pretraining.

The path of the data (ARCHITECTURE.md, "How data flows"):

    text ──split_corpus──> train / validation documents
         ──tokenizer──> token ids (cached, memory-mapped: tokens.py)
         ──objective──> batches of tensors ──> model ──> loss

Each family has an ``Objective`` that knows three things the trainer does not:

- how to make a batch from token ids: causal windows for GPT (Radford et al. 2018 §3.1),
  masked tokens + sentence pairs for BERT (Devlin et al. 2019 §3.1), corrupted spans for T5
  (Raffel et al. 2020 §3.1.4);
- which numbers to report on validation data (perplexity; MLM and NSP accuracy; span token accuracy);
- how to show progress as text (a continuation; predicted masked words; filled-in spans).

Fine-tuning (``minitransformer finetune``) adds three objectives on lists of (input, target) pairs
(``ExampleObjective``): T5 writes the target (``TextToTextObjective``), GPT continues the prompt with
it (``PromptCompletionObjective``), BERT names its class (``ClassificationObjective``).

Training batches are a pure function of ``(seed, split, step, micro_step)``: each is drawn from a
``torch.Generator`` seeded with those numbers. So the step number *is* the data position (a
resumed run draws exactly the batches it would have drawn), and every process of a distributed
run can draw the same global batch and keep its own rows of it (same batches whatever the
number of processes).

Validation examples are a pure function of their index alone: example j is drawn from its own
generator (``validation_generators``), whatever ``--seed``, ``--batch-size`` or ``--grad-accum``. A
run evaluates the first ``eval_batches x batch_size`` of them, so two runs that differ only in the
seed are measured on the same examples, and runs with other batch sizes share a prefix of them.
"""
from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from minitransformer.training.config import TrainConfig
from minitransformer.training.tokens import TokenSplit

IGNORE_INDEX = -100
TRAIN, VAL = 0, 1  # split numbers that go into the seeds


def make_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded by a hash of ``keys`` (independent streams for different keys)."""
    digest = hashlib.blake2b(",".join(str(int(k)) for k in keys).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def validation_generators(batch_index: int, batch_size: int) -> list[torch.Generator]:
    """One generator per example of validation batch ``batch_index``: example j gets ``make_generator(VAL, j)``.

    Not seeded by ``--seed``, and keyed by the example rather than the batch: the validation set
    is the same sequence of examples for every run on the same data and ``seq_len``.
    """
    first = batch_index * batch_size
    return [make_generator(VAL, first + row) for row in range(batch_size)]


# ---- corpus -> documents -> train/validation ---------------------------------------------------

def _cut_at_line(text: str, fraction: float) -> tuple[str, str]:
    """Split ``text`` at the line end nearest ``fraction`` of its length: (head, tail)."""
    target = int(len(text) * fraction)
    before = text.rfind("\n", 0, target)
    after = text.find("\n", target)
    candidates = [i + 1 for i in (before, after) if i != -1 and 0 < i + 1 < len(text)]
    cut = min(candidates, key=lambda i: abs(i - target)) if candidates else target
    return text[:cut], text[cut:]


def corpus_documents(corpus: str) -> list[str]:
    """The corpus's documents, whole: the embedded corpus's eight plays, or a user's corpus as one text."""
    from minitransformer.data.corpus import SHAKESPEARE, load_corpus, load_plays

    if corpus == SHAKESPEARE:
        return list(load_plays().values())
    return [load_corpus(corpus)]


def split_corpus(corpus: str, val_fraction: float) -> dict[str, list[str]]:
    """The corpus's documents cut into train and validation parts, deterministically.

    The embedded corpus's documents are its eight plays; a user's corpus is one document. Each
    document is cut at the line end nearest ``1 - val_fraction`` of its length: the head trains,
    the tail validates. For one document this is nanoGPT's split (first 90%, last 10%); for the
    plays, every play is seen in both splits.
    """
    train, val = [], []
    for doc in corpus_documents(corpus):
        head, tail = _cut_at_line(doc, 1.0 - val_fraction)
        train.append(head)
        val.append(tail)
    return {"train": train, "val": val}


def sentence_documents(texts: Sequence[str], corpus: str) -> list[list[str]]:
    """Documents as lists of sentences (BERT's NSP pairs need both).

    For the embedded corpus each text is a play and stays one document; a user's text is cut
    into documents at blank lines (``split_documents``).
    """
    from minitransformer.data.corpus import SHAKESPEARE, split_documents, split_sentences

    docs = list(texts) if corpus == SHAKESPEARE else [d for t in texts for d in split_documents(t)]
    out = [split_sentences(d) for d in docs]
    return [d for d in out if d]


# ---- tokenizers for each family ----------------------------------------------------------------

GPT_SPECIALS = ["<|endoftext|>"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
T5_BASE_SPECIALS = ["<pad>", "</s>", "<unk>"]


def sentinel_tokens(n: int) -> list[str]:
    return [f"<extra_id_{i}>" for i in range(n)]


def family_special_tokens(cfg: TrainConfig) -> list[str]:
    """The special tokens a family's objective needs in the vocabulary."""
    if cfg.family == "bert":
        return list(BERT_SPECIALS)
    if cfg.family == "t5":
        return T5_BASE_SPECIALS + sentinel_tokens(cfg.n_sentinels)
    return [] if cfg.tokenizer == "char" else list(GPT_SPECIALS)


def build_tokenizer(cfg: TrainConfig, splits: dict[str, list[str]]):
    """Train the run's tokenizer on the training texts, or load ``cfg.tokenizer`` if it is a file.

    A character vocabulary is read from all the text (as nanoGPT does), so that a character seen
    only in the validation split is not an error; subword tokenizers learn from the training split.
    """
    train_texts = splits["train"]
    from pathlib import Path

    specials = family_special_tokens(cfg)
    kind = cfg.tokenizer
    if kind not in ("char", "bpe", "wordpiece", "unigram"):
        from minitransformer.tokenizers import load_tokenizer

        if not Path(kind).is_file():
            raise FileNotFoundError(f"--tokenizer {kind!r} is neither char, bpe, wordpiece, unigram nor a "
                                    "tokenizer.json file")
        tok = load_tokenizer(kind)
        missing = [t for t in required_special_tokens(cfg) if tok.token_to_id(t) is None]
        if missing:
            raise ValueError(f"tokenizer {kind} lacks the special tokens {cfg.family} pretraining needs: "
                             f"{', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
        return tok
    if kind == "char":
        if cfg.vocab_size is not None:
            raise ValueError("--vocab-size does not apply to --tokenizer char (its vocabulary is the corpus's "
                             "characters)")
        from minitransformer.tokenizers import CharTokenizer

        unk = "[UNK]" if cfg.family == "bert" else ("<unk>" if cfg.family == "t5" else None)
        return CharTokenizer.train([t for texts in splits.values() for t in texts], special_tokens=specials,
                                   unk_token=unk)
    if cfg.vocab_size is None:
        raise ValueError(f"--tokenizer {kind} needs --vocab-size")
    lines = [line for text in train_texts for line in text.splitlines() if line.strip()]
    if kind == "bpe":
        from minitransformer.tokenizers import BPETokenizer

        return BPETokenizer.train(list(train_texts), vocab_size=cfg.vocab_size, special_tokens=specials, backend="hf")
    if kind == "wordpiece":
        from minitransformer.tokenizers import WordPieceTokenizer

        specials = specials if "[UNK]" in specials else ["[UNK]", *specials]
        # `tokenizers`' WordPiece trainer breaks ties in hash-map order, so its vocabulary changes
        # slightly from process to process; ours is deterministic (and takes seconds at these sizes),
        # which "the same --seed gives the same run" needs.
        return WordPieceTokenizer.train(lines, vocab_size=cfg.vocab_size, special_tokens=specials,
                                        unk_token="[UNK]", backend="python")
    from minitransformer.tokenizers import UnigramTokenizer

    if "<unk>" not in specials:
        specials = [*specials, "<unk>"]
    # paragraphs rather than lines, so that the line break is a character of the vocabulary
    # (verse keeps its shape; trained on lines, every "\n" would become <unk>)
    lines = [block + "\n" for text in train_texts for block in text.split("\n\n") if block.strip()]
    # `tokenizers`' Unigram trainer gives slightly different scores from process to process, so we
    # train with our own (deterministic) implementation, on evenly spaced paragraphs (about 75
    # characters per vocabulary entry, at least 50,000), as SentencePiece samples its input sentences.
    total, budget = sum(len(line) for line in lines), max(50_000, 75 * cfg.vocab_size)
    if total > budget:
        lines = lines[:: math.ceil(total / budget)]
    return UnigramTokenizer.train(lines, vocab_size=cfg.vocab_size, special_tokens=specials, unk_token="<unk>",
                                  backend="python")


def init_tokenizer(cfg: TrainConfig, splits: dict[str, list]):
    """The tokenizer of a run that starts from ``cfg.init_from``: that folder's ``tokenizer.json`` (or
    ``cfg.tokenizer`` if it names a file), with the characters of the run's data it cannot write
    added as tokens. Returns (tokenizer, the characters added)."""
    from pathlib import Path

    from minitransformer.training.config import TOKENIZER_KINDS

    if not Path(cfg.init_from).is_dir():
        raise FileNotFoundError(f"the starting model's folder {cfg.init_from} does not exist (give a run folder or "
                                "a saved model's folder)")
    from minitransformer.interop.files import read_config_json

    family = read_config_json(cfg.init_from).get("family", cfg.family)  # (a Hugging Face folder names none)
    if family != cfg.family:
        raise ValueError(f"{cfg.init_from} holds a {family} model; this run trains a {cfg.family}")
    path = Path(cfg.init_from) / "tokenizer.json" if cfg.tokenizer in TOKENIZER_KINDS else Path(cfg.tokenizer)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a run that starts from {cfg.init_from} needs the tokenizer its "
                                "model was trained with (give --tokenizer path/to/tokenizer.json)")
    import dataclasses

    tokenizer = build_tokenizer(dataclasses.replace(cfg, tokenizer=str(path), vocab_size=None), splits)
    added = []
    if cfg.family == "gpt" and cfg.task == "text-to-text" and tokenizer.token_to_id(GPT_SPECIALS[0]) is None:
        tokenizer.add_special_tokens(GPT_SPECIALS)  # the answer's end: what tells generation to stop
        added.append(GPT_SPECIALS[0])
    for c in unknown_characters(tokenizer, split_texts(cfg, splits)):
        # one at a time: with a lowercasing normalizer, an added "X" also writes "x" (then not added again)
        if unknown_characters(tokenizer, [c]):
            tokenizer.add_tokens([c])
            added.append(c)
    return tokenizer, added


def required_special_tokens(cfg: TrainConfig) -> list[str]:
    if cfg.family == "bert":
        return ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    if cfg.family == "t5":
        return ["<pad>", "</s>"] + sentinel_tokens(1)
    return []


# ---- objectives --------------------------------------------------------------------------------

class Objective(ABC):
    """What the trainer asks of a family. Subclasses fill in the four methods."""

    family: str = ""
    reports_perplexity = False  # exp(loss) is meaningful for token-level cross-entropy losses only

    def __init__(self, cfg: TrainConfig, data: dict[str, TokenSplit], tokenizer) -> None:
        self.cfg = cfg
        self.data = data
        self.tokenizer = tokenizer

    @abstractmethod
    def model_config(self):
        """The config of the model this objective trains."""

    @abstractmethod
    def batch(self, split: int, step: int, micro: int, rows: slice) -> dict[str, torch.Tensor]:
        """Rows ``rows`` of the global micro-batch ``(split, step, micro)``: tensors on the CPU."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch."""

    @abstractmethod
    def eval_sums(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-batch sums for validation metrics: name -> tensor([total, count])."""

    def finish(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        """Validation metrics from summed totals; must include "loss"."""
        out = {name: float(v[0] / v[1]) if float(v[1]) > 0 else float("nan") for name, v in sums.items()}
        if self.reports_perplexity:
            out["perplexity"] = math.exp(min(out["loss"], 50.0))
        return out

    def sample(self, model: nn.Module, device: torch.device) -> str:
        return ""

    def eval_batch_count(self, requested: int) -> int:
        """How many validation batches an evaluation runs: ``eval_batches``, unless the split ends sooner."""
        return requested

    def notes(self) -> list[str]:
        """Things about the data a user should know before training (printed at the start of a run)."""
        return []

    def check_sizes(self, advice: str = "; give a larger corpus or a smaller --seq-len") -> None:  # noqa: B027
        """ValueError if the corpus is too small for one example of either split; ``advice`` ends the
        message where a shorter sequence would help. (An optional hook: most objectives have nothing to check.)"""


def _pair(total: torch.Tensor, count) -> torch.Tensor:
    # to the CPU first: MPS has no float64
    return torch.stack([total.detach().cpu().double(), torch.as_tensor(count, dtype=torch.float64)])


class CausalLMObjective(Objective):
    """GPT: predict every next token of a random window of the text (Radford et al. 2018 §3.1).

    A window of T + 1 tokens gives inputs ``x = w[:T]`` and targets ``y = w[1:]``: T predictions,
    each from all the tokens before it (the model's causal mask hides the future), as nanoGPT.
    """

    family = "gpt"

    def model_config(self):
        from minitransformer.models.config import GPTConfig

        eos = self.tokenizer.token_to_id("<|endoftext|>")
        return GPTConfig(**{"vocab_size": self.tokenizer.vocab_size, "max_seq_len": self.cfg.seq_len,
                            "eos_token_id": eos, **self.cfg.model})

    def check_sizes(self, advice: str = "; give a larger corpus or a smaller --seq-len") -> None:
        need = self.cfg.seq_len + 1
        for name, split in self.data.items():
            if len(split) < need:
                raise ValueError(f"the corpus is too small: its {name} split has {len(split)} tokens, fewer than "
                                 f"one context window of seq_len + 1 = {need}{advice}")

    def batch(self, split: int, step: int, micro: int, rows: slice) -> dict[str, torch.Tensor]:
        tokens = self.data["train" if split == TRAIN else "val"].tokens
        T, B = self.cfg.seq_len, self.cfg.batch_size
        if split == TRAIN:
            starts = torch.randint(len(tokens) - T, (B,), generator=make_generator(self.cfg.seed, split, step, micro))
        else:
            starts = torch.cat([torch.randint(len(tokens) - T, (1,), generator=g)
                                for g in validation_generators(step, B)])
        starts = starts[rows].tolist()
        windows = torch.from_numpy(np.stack([np.asarray(tokens[s:s + T + 1], dtype=np.int64) for s in starts]))
        return {"input_ids": windows[:, :-1], "targets": windows[:, 1:]}  # (B, T) each

    def loss(self, model, batch):
        # every row has T targets, so each process's plain mean counts as much as its rows (DDP-safe)
        logits = model(batch["input_ids"]).logits  # (B, T, V)
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), batch["targets"].reshape(-1))

    def eval_sums(self, model, batch):
        logits = model(batch["input_ids"]).logits.float()  # (B, T, V)
        total = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch["targets"].reshape(-1), reduction="sum")
        return {"loss": _pair(total, batch["targets"].numel())}

    reports_perplexity = True

    def sample(self, model, device):
        prompt = self.tokenizer.encode(self.cfg.sample_prompt) if self.cfg.sample_prompt else []
        if not prompt:
            prompt = [int(self.data["val"].tokens[0])]
        prompt = prompt[-self.cfg.seq_len:]
        ids = torch.tensor([prompt], dtype=torch.long, device=device)
        g = torch.Generator(device=device).manual_seed(self.cfg.seed)
        n_new = min(self.cfg.sample_tokens, max(1, 4 * self.cfg.seq_len))
        out = model.generate(ids, max_new_tokens=n_new, temperature=0.8, top_k=None, generator=g,
                             sliding_window=True)
        return self.tokenizer.decode(out[0].tolist())


class MaskedLMObjective(Objective):
    """BERT: masked-token prediction plus next-sentence prediction (Devlin et al. 2019 §3.1).

    Sentence pairs come from ``make_nsp_pairs`` (half true continuations, half random), framed as
    ``[CLS] A [SEP] B [SEP]`` and padded to ``seq_len``; ``mask_tokens`` then hides 15% of the
    tokens, afresh for every batch (dynamic masking, RoBERTa §4.1). An "epoch" is one pass over
    the pairs cut (with a fresh random cut) from the training documents.
    """

    family = "bert"

    def __init__(self, cfg, data, tokenizer) -> None:
        super().__init__(cfg, data, tokenizer)
        ids = {t: tokenizer.token_to_id(t) for t in BERT_SPECIALS}
        missing = [t for t in ("[PAD]", "[CLS]", "[SEP]", "[MASK]") if ids[t] is None]
        if missing:
            raise ValueError(f"the tokenizer lacks BERT's special tokens {', '.join(missing)}")
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = ids["[PAD]"], ids["[CLS]"], ids["[SEP]"], ids["[MASK]"]
        # never masked: BERT's own tokens and any other special token of the tokenizer (a user's
        # tokenizer.json may add markers such as "<scene>"); added non-special words may be masked
        self.special_ids = sorted({i for i in ids.values() if i is not None} | set(tokenizer.special_token_ids()))
        self._documents = {name: split.document_sentences() for name, split in data.items()}
        self._epochs: dict[tuple[int, int], list] = {}
        self._epoch_size: dict[int, int] = {}

    def model_config(self):
        from minitransformer.models.config import BertConfig

        return BertConfig(**{"vocab_size": self.tokenizer.vocab_size, "max_seq_len": self.cfg.seq_len,
                             "pad_token_id": self.pad_id, **self.cfg.model})

    def check_sizes(self, advice: str = "; give a larger corpus or a smaller --seq-len") -> None:
        for name, docs in self._documents.items():
            n_docs = sum(1 for d in docs if any(d))
            if n_docs < 2:
                raise ValueError(f"the corpus is too small for BERT: its {name} split has {n_docs} document(s); "
                                 "next-sentence prediction needs at least 2 (separate documents with blank lines)")
            n_tokens = sum(len(s) for d in docs for s in d)
            if n_tokens < self.cfg.seq_len:
                raise ValueError(f"the corpus is too small: its {name} split has {n_tokens} tokens, fewer than "
                                 f"one sequence of seq_len = {self.cfg.seq_len}{advice}")

    def _pairs(self, split: int, epoch: int) -> list:
        """The (shuffled) NSP pairs of one epoch of a split; cached, the last few kept."""
        key = (split, epoch)
        if key not in self._epochs:
            from minitransformer.data.nsp import make_nsp_pairs

            g = make_generator(self.cfg.seed, split, epoch, 7) if split == TRAIN else make_generator(split, epoch, 7)
            docs = self._documents["train" if split == TRAIN else "val"]
            pairs = make_nsp_pairs(docs, max_len=self.cfg.seq_len, generator=g)
            order = torch.randperm(len(pairs), generator=g).tolist()
            if len(self._epochs) >= 4:
                self._epochs.pop(next(iter(self._epochs)))
            self._epochs[key] = [pairs[i] for i in order]
        return self._epochs[key]

    def _pair_at(self, split: int, index: int):
        """The ``index``-th pair of the stream of epochs (each epoch as long as the first)."""
        if split not in self._epoch_size:
            self._epoch_size[split] = len(self._pairs(split, 0))
        size = self._epoch_size[split]
        epoch_pairs = self._pairs(split, index // size)
        return epoch_pairs[(index % size) % len(epoch_pairs)]

    def batch(self, split, step, micro, rows):
        from minitransformer.data.masking import mask_tokens
        from minitransformer.data.nsp import nsp_batch

        B = self.cfg.batch_size
        first = (step * self.cfg.grad_accum + micro) * B if split == TRAIN else step * B
        pairs = [self._pair_at(split, first + i) for i in range(B)]  # the whole global micro-batch
        batch = nsp_batch(pairs, self.cls_id, self.sep_id, self.pad_id, max_len=self.cfg.seq_len)
        pad = self.cfg.seq_len - batch["input_ids"].shape[1]  # fixed shapes: pad every batch to seq_len
        if pad > 0:
            batch["input_ids"] = F.pad(batch["input_ids"], (0, pad), value=self.pad_id)
            batch["token_type_ids"] = F.pad(batch["token_type_ids"], (0, pad), value=0)
            batch["attention_mask"] = F.pad(batch["attention_mask"], (0, pad), value=0)
        def masked(input_ids, attention_mask, g):
            return mask_tokens(input_ids, vocab_size=self.tokenizer.vocab_size, mask_token_id=self.mask_id,
                               special_token_ids=self.special_ids, mlm_probability=self.cfg.mlm_probability,
                               generator=g, attention_mask=attention_mask)

        if split == TRAIN:  # one draw for the batch
            ids, labels = masked(batch["input_ids"], batch["attention_mask"],
                                 make_generator(self.cfg.seed, split, step, micro, 11))
        else:  # one draw per example (see validation_generators)
            rows_masked = [masked(batch["input_ids"][r], batch["attention_mask"][r], g)
                           for r, g in enumerate(validation_generators(step, B))]
            ids, labels = (torch.stack(t) for t in zip(*rows_masked, strict=True))
        batch["input_ids"], batch["mlm_labels"] = ids, labels
        out = {k: v[rows] for k, v in batch.items()}
        # The MLM loss is a mean over masked tokens, and each process (each slice of rows) holds a
        # different number of them; DDP then averages the processes' gradients with equal weights.
        # Weighting each slice's mean by its share of the masked tokens (times the number of slices)
        # makes that average the mean over the whole micro-batch: the same run as one process.
        n_all, n_here = int((labels != IGNORE_INDEX).sum()), int((out["mlm_labels"] != IGNORE_INDEX).sum())
        slices = B / out["mlm_labels"].shape[0]
        out["mlm_weight"] = torch.tensor(n_here * slices / n_all if n_all else 1.0)
        return out

    def loss(self, model, batch):
        out = model(batch["input_ids"], token_type_ids=batch["token_type_ids"],
                    attention_mask=batch["attention_mask"], mlm_labels=batch["mlm_labels"],
                    nsp_labels=batch["nsp_labels"], return_mlm_logits=False)
        return out.mlm_loss * batch["mlm_weight"] + out.nsp_loss  # weight: 1.0 in a single process

    def eval_sums(self, model, batch):
        out = model(batch["input_ids"], token_type_ids=batch["token_type_ids"],
                    attention_mask=batch["attention_mask"])
        labels, selected = batch["mlm_labels"], batch["mlm_labels"] != IGNORE_INDEX
        mlm_logits = out.mlm_logits[selected].float()  # (N, V)
        mlm_targets = labels[selected]
        nsp_logits = out.nsp_logits.float()  # (B, 2)
        n_mlm, n_nsp = int(selected.sum()), nsp_logits.shape[0]
        return {
            "mlm_loss": _pair(F.cross_entropy(mlm_logits, mlm_targets, reduction="sum"), n_mlm),
            "nsp_loss": _pair(F.cross_entropy(nsp_logits, batch["nsp_labels"], reduction="sum"), n_nsp),
            "mlm_accuracy": _pair((mlm_logits.argmax(-1) == mlm_targets).sum(), n_mlm),
            "nsp_accuracy": _pair((nsp_logits.argmax(-1) == batch["nsp_labels"]).sum(), n_nsp),
        }

    def finish(self, sums):
        out = super().finish(sums)
        return {"loss": out["mlm_loss"] + out["nsp_loss"], **out}  # as the model's training loss: the sum

    def sample(self, model, device):
        batch = self.batch(VAL, 0, 0, slice(0, 1))
        batch = {k: v.to(device) for k, v in batch.items()}
        out = model(batch["input_ids"], token_type_ids=batch["token_type_ids"], attention_mask=batch["attention_mask"])
        selected = batch["mlm_labels"][0] != IGNORE_INDEX
        predicted = out.mlm_logits[0].argmax(-1)
        ids = batch["input_ids"][0].tolist()
        length = int(batch["attention_mask"][0].sum())
        shown = []
        for pos in range(length):
            tok = self.tokenizer.id_to_token(ids[pos])
            if bool(selected[pos]):
                want = self.tokenizer.id_to_token(int(batch["mlm_labels"][0, pos]))
                got = self.tokenizer.id_to_token(int(predicted[pos]))
                tok = f"[{want}→{got}]" if want != got else f"[{want}✓]"
            shown.append(tok)
        text = " ".join(shown).replace(" ##", "")
        is_next = "IsNext" if int(batch["nsp_labels"][0]) == 0 else "NotNext"
        guess = "IsNext" if int(out.nsp_logits[0].argmax()) == 0 else "NotNext"
        return f"{text}\n(masked [true→predicted]; NSP: {is_next}, predicted {guess})"


class SpanCorruptionObjective(Objective):
    """T5: reconstruct the spans hidden behind sentinel tokens (Raffel et al. 2020 §3.1.4).

    A random window of ``tokens_length`` tokens is corrupted (15% of tokens in spans of mean
    length 3) so that its input is exactly ``seq_len`` tokens long and its target
    ``targets_length`` (``compute_span_corruption_lengths``: no padding needed).
    """

    family = "t5"

    def __init__(self, cfg, data, tokenizer) -> None:
        super().__init__(cfg, data, tokenizer)
        from minitransformer.data.span_corruption import compute_span_corruption_lengths

        self.pad_id = tokenizer.token_to_id("<pad>")
        self.eos_id = tokenizer.token_to_id("</s>")
        self.sentinels = []
        for name in sentinel_tokens(100):
            idx = tokenizer.token_to_id(name)
            if idx is None:
                break
            self.sentinels.append(idx)
        if self.pad_id is None or self.eos_id is None or not self.sentinels:
            raise ValueError("the tokenizer lacks T5's special tokens (<pad>, </s>, <extra_id_0>, ...)")
        self.tokens_length, self.targets_length = compute_span_corruption_lengths(
            cfg.seq_len, cfg.noise_density, cfg.mean_noise_span_length)
        n_noise = round(self.tokens_length * cfg.noise_density)
        n_spans = max(1, round(n_noise / cfg.mean_noise_span_length))
        if n_spans > len(self.sentinels):
            raise ValueError(f"seq_len={cfg.seq_len} makes {n_spans} spans per example but the tokenizer has only "
                             f"{len(self.sentinels)} sentinel tokens; raise n_sentinels or lower seq_len")

    def model_config(self):
        from minitransformer.models.config import T5Config

        return T5Config(**{"vocab_size": self.tokenizer.vocab_size, "pad_token_id": self.pad_id,
                           "eos_token_id": self.eos_id, "decoder_start_token_id": self.pad_id,
                           "max_seq_len": max(self.cfg.seq_len, self.targets_length), **self.cfg.model})

    def check_sizes(self, advice: str = "; give a larger corpus or a smaller --seq-len") -> None:
        for name, split in self.data.items():
            if len(split) < self.tokens_length:
                raise ValueError(f"the corpus is too small: its {name} split has {len(split)} tokens, fewer than "
                                 f"one example of {self.tokens_length} tokens (seq_len={self.cfg.seq_len}){advice}")

    def batch(self, split, step, micro, rows):
        from minitransformer.data.span_corruption import span_corruption

        tokens = self.data["train" if split == TRAIN else "val"].tokens
        B, L = self.cfg.batch_size, self.tokens_length
        if split == TRAIN:  # one generator draws the whole batch: the starts, then each row's spans
            g = make_generator(self.cfg.seed, split, step, micro)
            starts = torch.randint(len(tokens) - L + 1, (B,), generator=g).tolist()
            generators = [g] * B
        else:  # one generator per example (see validation_generators)
            generators = validation_generators(step, B)
            starts = [int(torch.randint(len(tokens) - L + 1, (1,), generator=g)) for g in generators]
        input_ids = torch.full((B, self.cfg.seq_len), self.pad_id, dtype=torch.long)          # (B, S)
        labels = torch.full((B, self.targets_length), IGNORE_INDEX, dtype=torch.long)         # (B, T)
        for row, (s, g) in enumerate(zip(starts, generators, strict=True)):
            inputs, targets = span_corruption(np.asarray(tokens[s:s + L], dtype=np.int64).tolist(),
                                              self.cfg.noise_density, self.cfg.mean_noise_span_length,
                                              self.sentinels, self.eos_id, generator=g)
            input_ids[row, :len(inputs)] = torch.tensor(inputs)
            labels[row, :len(targets)] = torch.tensor(targets)
        attention_mask = (input_ids != self.pad_id).long()
        return {"input_ids": input_ids[rows], "attention_mask": attention_mask[rows], "labels": labels[rows]}

    def loss(self, model, batch):
        # Every row's target is as long (its window's length fixes it; any -100 padding is the same in
        # every row), so under DDP each process's plain mean counts as much as its rows: no weight needed.
        return model(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss

    def eval_sums(self, model, batch):
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).logits
        labels = batch["labels"]
        selected = labels != IGNORE_INDEX
        total = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1),
                                ignore_index=IGNORE_INDEX, reduction="sum")
        n = int(selected.sum())
        correct = (logits.argmax(-1)[selected] == labels[selected]).sum()
        return {"loss": _pair(total, n), "token_accuracy": _pair(correct, n)}

    reports_perplexity = True

    def sample(self, model, device):
        batch = self.batch(VAL, 0, 0, slice(0, 1))
        ids = batch["input_ids"].to(device)
        mask = batch["attention_mask"].to(device)
        n_new = max(1, min(self.cfg.sample_tokens, self.targets_length))  # a target is never longer
        out = model.generate(ids, attention_mask=mask, max_new_tokens=n_new)
        def dec(ids: list[int]) -> str:
            return self.tokenizer.decode(ids).replace("\n", "⏎ ")

        target = [t for t in batch["labels"][0].tolist() if t != IGNORE_INDEX]
        return (f"input:     {dec([t for t in ids[0].tolist() if t != self.pad_id])}\n"
                f"target:    {dec(target)}\n"
                f"predicted: {dec(out[0, 1:].tolist())}")


def sql_database(cfg: TrainConfig):
    """The database the built-in ``sql`` task's questions are about (to run the answers), else None."""
    if cfg.corpus != "sql":
        return None
    from minitransformer.data.sql_task import make_database

    return make_database()


class ExampleObjective(Objective):
    """What the fine-tuning objectives share: a finite list of examples per split.

    Training draws them in epochs, one shuffled pass after another, the order a function of
    ``(seed, epoch)``: so the step is still the data position, and ``--resume`` exact. Validation
    goes through the validation examples once, in one fixed shuffled order (the same for every run, so
    that the first ``eval_batches`` batches are a fair sample even of a file sorted by class); rows after
    the last example repeat it and are marked not ``real``, so they count for nothing.
    """

    def __init__(self, cfg, data, tokenizer) -> None:
        super().__init__(cfg, data, tokenizer)
        # each example is a "document" of the cache: its pieces' ids (input, and target for text-to-text)
        self._examples = {name: split.document_sentences() for name, split in data.items()}
        self._epoch, self._order = -1, []  # the training permutation in use, made when an epoch starts
        # validation's one fixed shuffle (not --seed's): any first part of it is a fair sample
        n_val = len(self._examples.get("val", []))
        self._val_order = torch.randperm(n_val, generator=make_generator(VAL, 17)).tolist()

    def model_config(self):
        """None of its own: fine-tuning takes the model of ``init_from`` (``trainer.fit_init_config``)."""
        raise ValueError("fine-tuning starts from a trained model: set init_from (--from) to its folder")

    def check_sizes(self, advice: str = "") -> None:
        for name, examples in self._examples.items():
            if not examples:
                raise ValueError(f"the {name} split holds no examples")

    def eval_batch_count(self, requested: int) -> int:
        """Validation stops at the end of the validation examples (the last batch may be partly empty)."""
        return min(requested, math.ceil(len(self._examples.get("val", [])) / self.cfg.batch_size))

    def cut_notes(self, what: str, lengths_of, limit: int, advice: str) -> list[str]:
        """One line per split saying how many of its ``what`` are longer than ``limit`` tokens (and so are
        cut); ``lengths_of(example)`` counts an example's tokens the way the batches frame it."""
        out = []
        for name, examples in self._examples.items():
            lengths = [lengths_of(e) for e in examples]
            cut = sum(n > limit for n in lengths)
            if cut:
                out.append(f"{cut} of {len(examples)} {name} {what} are longer than {limit} tokens (the longest: "
                           f"{max(lengths)}) and are cut; {advice}")
        return out

    def positions(self, split: int, step: int, micro: int) -> tuple[list[int], list[bool]]:
        """Which examples (indices into the split) make the global micro-batch, and which rows are real."""
        B = self.cfg.batch_size
        if split != TRAIN:
            n_val = len(self._val_order)
            wanted = [step * B + i for i in range(B)]
            return [self._val_order[min(p, n_val - 1)] for p in wanted], [p < n_val for p in wanted]
        n = len(self._examples["train"])
        first = (step * self.cfg.grad_accum + micro) * B
        out = []
        for position in range(first, first + B):
            epoch, index = divmod(position, n)
            if epoch != self._epoch:  # one permutation per epoch, kept while it lasts
                self._epoch = epoch
                self._order = torch.randperm(n, generator=make_generator(self.cfg.seed, epoch, 13)).tolist()
            out.append(self._order[index])
        return out, [True] * B


class TextToTextObjective(ExampleObjective):
    """T5 fine-tuning: write the target text given the input text (Raffel et al. 2020 §2.4).

    The same model and loss as span corruption, other data: each example is an (input, target)
    pair from a file or a built-in task (``minitransformer.data.pairs``), the input cut to
    ``seq_len`` tokens and the target to ``target_len`` (each ending in ``</s>``), padded to the
    longest in the batch. Training draws examples in epochs (``ExampleObjective``). Validation goes
    through the validation pairs (at most ``eval_batches`` batches) and also *generates* each answer greedily:
    exact match, and for the built-in SQL task execution accuracy (the predicted query returns the
    gold query's rows, ``sql_task.execution_match``).
    """

    family = "t5"
    reports_perplexity = True
    end_token, pad_token = "</s>", "<pad>"  # the answer's end marker, and what pads a batch

    def __init__(self, cfg, data, tokenizer) -> None:
        super().__init__(cfg, data, tokenizer)
        self.eos_id = tokenizer.token_to_id(self.end_token)
        self.pad_id = tokenizer.token_to_id(self.pad_token)
        if self.pad_id is None or self.eos_id is None:
            raise ValueError(f"the tokenizer lacks the {self.family} special tokens {self.end_token} and {self.pad_token}")
        self.database = sql_database(cfg)

    def notes(self) -> list[str]:
        """Examples cut to fit ``seq_len`` / ``target_len`` (a cut target cannot be answered exactly)."""
        return (self.cut_notes("inputs", lambda e: len(e[0]) + 1, self.cfg.seq_len,  # + </s>
                               "raise --seq-len to keep them whole")
                + self.cut_notes("targets", lambda e: len(e[1]) + 1, self.cfg.target_len,
                                 "raise --target-len to keep them whole"))

    def batch(self, split, step, micro, rows):
        B = self.cfg.batch_size
        positions, real = self.positions(split, step, micro)
        examples = []
        for p in positions:  # each side cut to its length, </s> kept
            source, target = self._examples["train" if split == TRAIN else "val"][p]
            examples.append((source[: self.cfg.seq_len - 1] + [self.eos_id],
                             target[: self.cfg.target_len - 1] + [self.eos_id]))
        S = max(len(s) for s, _ in examples)
        T = max(len(t) for _, t in examples)
        input_ids = torch.full((B, S), self.pad_id, dtype=torch.long)      # (B, S)
        attention_mask = torch.zeros((B, S), dtype=torch.long)
        labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)        # (B, T)
        for row, ((source, target), is_real) in enumerate(zip(examples, real, strict=True)):
            input_ids[row, :len(source)] = torch.tensor(source)
            attention_mask[row, :len(source)] = 1
            if is_real:
                labels[row, :len(target)] = torch.tensor(target)
        return self._rows(split, rows, positions, real, input_ids, attention_mask, labels,
                          tokens=int(attention_mask.sum()) + int((labels != IGNORE_INDEX).sum()))

    def _rows(self, split: int, rows: slice, positions: list[int], real: list[bool], input_ids: torch.Tensor,
              attention_mask: torch.Tensor, labels: torch.Tensor, tokens: int) -> dict[str, torch.Tensor]:
        """Rows ``rows`` of the global micro-batch, with what validation and DDP need besides the tensors."""
        out = {"input_ids": input_ids[rows], "attention_mask": attention_mask[rows], "labels": labels[rows],
               "real": torch.tensor(real)[rows], "tokens": torch.tensor(tokens)}  # tokens: of all processes
        if split != TRAIN:  # which validation example each row is (its whole target, even if cut)
            out["example"] = torch.tensor(positions)[rows]
        # Targets differ in length, so each process's mean loss covers another number of tokens:
        # weighted by its share of the micro-batch's target tokens (as BERT's MLM loss), DDP's
        # average of the processes' gradients is the gradient of the whole micro-batch's mean.
        n_all, n_here = int((labels != IGNORE_INDEX).sum()), int((out["labels"] != IGNORE_INDEX).sum())
        out["weight"] = torch.tensor(n_here * (labels.shape[0] / out["labels"].shape[0]) / n_all if n_all else 1.0)
        return out

    def loss(self, model, batch):
        out = model(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        return out.loss * batch["weight"]  # weight: 1.0 in a single process

    def _answers(self, model, batch) -> list[list[int]]:
        """Greedy answers to the batch's inputs, as ids up to (not including) ``</s>``."""
        out = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"],
                             max_new_tokens=self.cfg.target_len)
        answers = []
        for row in out[:, 1:].tolist():  # without the decoder's start token
            answers.append(row[: row.index(self.eos_id)] if self.eos_id in row else row)
        return answers

    def _scores(self, model, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, V) logits and (B, T) targets (-100: not scored) of the batch's target tokens."""
        return model(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).logits, \
            batch["labels"]

    def eval_sums(self, model, batch):
        logits, labels = self._scores(model, batch)
        selected = labels != IGNORE_INDEX
        total = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1),
                                ignore_index=IGNORE_INDEX, reduction="sum")
        n = int(selected.sum())
        correct = (logits.argmax(-1)[selected] == labels[selected]).sum()
        sums = {"loss": _pair(total, n), "token_accuracy": _pair(correct, n)}
        from minitransformer.data.sql_task import execution_match

        real = batch["real"].tolist()
        answers = self._answers(model, batch)
        exact = executed = 0
        for answer, example, is_real in zip(answers, batch["example"].tolist(), real, strict=True):
            if not is_real:
                continue
            gold = self._examples["val"][example][1]  # the whole target: a cut one is never matched
            predicted_text = self.tokenizer.decode(answer, skip_special_tokens=True)
            gold_text = self.tokenizer.decode(gold, skip_special_tokens=True)
            exact += predicted_text == gold_text
            if self.database is not None:
                executed += execution_match(predicted_text, gold_text, self.database)
        sums["exact_match"] = _pair(torch.tensor(float(exact)), sum(real))
        if self.database is not None:
            sums["execution_accuracy"] = _pair(torch.tensor(float(executed)), sum(real))
        return sums

    def sample(self, model, device):
        batch = {k: v.to(device) for k, v in self.batch(VAL, 0, 0, slice(0, 1)).items()}
        answer = self._answers(model, batch)[0]

        def text(ids: list[int]) -> str:
            return self.tokenizer.decode(ids, skip_special_tokens=True).replace("\n", "⏎ ")

        source, target = self._examples["val"][int(batch["example"][0])]
        return f"input:     {text(source)}\ntarget:    {text(target)}\npredicted: {text(answer)}"


class PromptCompletionObjective(TextToTextObjective):
    """GPT fine-tuning on the same pairs: the input is a prompt, the target its completion.

    A decoder has no encoder to read the input with, so both go into one sequence,
    ``prompt + target + <|endoftext|>``, and the loss counts only the target's tokens (the prompt's
    labels are -100): the model learns to continue a prompt with its answer and then stop (GPT-2
    and GPT-3 cast tasks as continuations the same way, Radford et al. 2019 §3). The target is cut to
    ``target_len`` tokens (the end marker included) and the prompt to its *last* ``seq_len -
    target_len`` tokens, the ones next to the answer, so a sequence always fits the model's context.
    Validation generates each answer greedily from the prompt alone, as T5's does.
    """

    family = "gpt"
    # padding is masked out and never scored, so the end marker pads too (a GPT tokenizer has no pad token)
    end_token = pad_token = GPT_SPECIALS[0]

    def _cut(self, prompt: list[int], target: list[int]) -> tuple[list[int], list[int]]:
        budget = self.cfg.seq_len - self.cfg.target_len
        return prompt[len(prompt) - budget:] if len(prompt) > budget else prompt, \
            target[: self.cfg.target_len - 1] + [self.eos_id]

    def notes(self) -> list[str]:
        advice = (f"--seq-len {self.cfg.seq_len} holds prompt and target, --target-len {self.cfg.target_len} the "
                  "target with its end marker")
        return (self.cut_notes("prompts (their first tokens are dropped)", lambda e: len(e[0]),
                               self.cfg.seq_len - self.cfg.target_len, advice)
                + self.cut_notes("targets", lambda e: len(e[1]) + 1, self.cfg.target_len, advice))

    def batch(self, split, step, micro, rows):
        B = self.cfg.batch_size
        positions, real = self.positions(split, step, micro)
        name = "train" if split == TRAIN else "val"
        pairs = [self._cut(*self._examples[name][p]) for p in positions]
        T = max(len(p) + len(t) for p, t in pairs)
        input_ids = torch.full((B, T), self.pad_id, dtype=torch.long)      # (B, T): prompt, target, padding
        attention_mask = torch.zeros((B, T), dtype=torch.long)
        labels = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)        # the target's positions only
        for row, ((prompt, target), is_real) in enumerate(zip(pairs, real, strict=True)):
            n = len(prompt) + len(target)
            input_ids[row, :n] = torch.tensor(prompt + target)
            attention_mask[row, :n] = 1
            if is_real:
                labels[row, len(prompt):n] = torch.tensor(target)
        return self._rows(split, rows, positions, real, input_ids, attention_mask, labels,
                          tokens=int(attention_mask.sum()))

    def _scores(self, model, batch):
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
        return logits[:, :-1], batch["labels"][:, 1:]  # position t predicts token t + 1

    def _answers(self, model, batch) -> list[list[int]]:
        prompts = [self._cut(*self._examples["val"][p])[0] for p in batch["example"].tolist()]
        P = max(map(len, prompts))
        device = batch["input_ids"].device
        ids = torch.full((len(prompts), P), self.pad_id, dtype=torch.long, device=device)  # left-padded
        mask = torch.zeros_like(ids)
        for row, prompt in enumerate(prompts):
            ids[row, P - len(prompt):] = torch.tensor(prompt, device=device)
            mask[row, P - len(prompt):] = 1
        out = model.generate(ids, max_new_tokens=self.cfg.target_len, do_sample=False, eos_token_id=self.eos_id,
                             attention_mask=mask, pad_token_id=self.pad_id)
        return [row[: row.index(self.eos_id)] if self.eos_id in row else row for row in out[:, P:].tolist()]


class ClassificationObjective(ExampleObjective):
    """BERT fine-tuning: which class a text belongs to (Devlin et al. 2019 §4.1).

    Each example is ``[CLS] text [SEP]``, or for a pair of texts ``[CLS] text [SEP] text_pair [SEP]``
    with token types 0 and 1 (cut to ``seq_len``, the longer text first), and a class; the model is a
    ``SequenceClassifier``: the pretrained encoder and one new linear layer on the pooled ``[CLS]``
    vector (or the mean of the token vectors, for an encoder without a pooler). The classes are the
    training examples' target names, sorted, unless ``labels`` gives them (a saved classifier's).
    Validation reports the loss, the accuracy and the macro F1 (the mean of the classes' F1 scores).
    """

    family = "bert"

    def __init__(self, cfg, data, tokenizer, targets: dict[str, list[str]], labels: list[str] | None = None) -> None:
        super().__init__(cfg, data, tokenizer)
        ids = {t: tokenizer.token_to_id(t) for t in ("[PAD]", "[CLS]", "[SEP]")}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"the tokenizer lacks BERT's special tokens {', '.join(missing)}")
        self.pad_id, self.cls_id, self.sep_id = ids["[PAD]"], ids["[CLS]"], ids["[SEP]"]
        self.labels = sorted(set(targets.get("train", []))) if labels is None else list(labels)
        index = {name: i for i, name in enumerate(self.labels)}
        for name, names in targets.items():
            unknown = sorted(set(names) - set(index))
            if unknown:
                raise ValueError(f"the {name} split has classes the classifier does not know: "
                                 f"{', '.join(map(repr, unknown[:5]))} (it knows {', '.join(map(repr, self.labels[:10]))})")
        if len(self.labels) < 2:
            raise ValueError(f"classification needs at least 2 classes in the training data, got {self.labels}")
        self._classes = {name: [index[t] for t in names] for name, names in targets.items()}

    def _frame(self, pieces: list[list[int]]) -> tuple[list[int], list[int]]:
        """One text or a pair -> ids and token types, cut to ``seq_len``."""
        if len(pieces) == 1:
            ids = [self.cls_id, *pieces[0][: self.cfg.seq_len - 2], self.sep_id]
            return ids, [0] * len(ids)
        from minitransformer.data.nsp import frame_pair

        return frame_pair(pieces[0], pieces[1], self.cls_id, self.sep_id, max_len=self.cfg.seq_len)

    def notes(self) -> list[str]:
        return self.cut_notes("texts", lambda e: sum(map(len, e)) + len(e) + 1,  # + [CLS] and a [SEP] per text
                              self.cfg.seq_len, "raise --seq-len to keep them whole")

    def batch(self, split, step, micro, rows):
        B = self.cfg.batch_size
        name = "train" if split == TRAIN else "val"
        positions, real = self.positions(split, step, micro)
        framed = [self._frame(self._examples[name][p]) for p in positions]
        T = max(len(ids) for ids, _ in framed)
        input_ids = torch.full((B, T), self.pad_id, dtype=torch.long)   # (B, T)
        token_type_ids = torch.zeros((B, T), dtype=torch.long)
        attention_mask = torch.zeros((B, T), dtype=torch.long)
        for row, (ids, types) in enumerate(framed):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            token_type_ids[row, :len(ids)] = torch.tensor(types)
            attention_mask[row, :len(ids)] = 1
        classes = torch.tensor([self._classes[name][p] for p in positions])  # (B,)
        # every process holds as many (real) training rows, so each one's plain mean counts alike
        return {"input_ids": input_ids[rows], "token_type_ids": token_type_ids[rows],
                "attention_mask": attention_mask[rows], "labels": classes[rows], "real": torch.tensor(real)[rows],
                "tokens": torch.tensor(int(attention_mask.sum()))}

    def loss(self, model, batch):
        return model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], labels=batch["labels"]).loss

    def eval_sums(self, model, batch):
        logits = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]).logits.float()  # (B, n)
        real = batch["real"]
        labels, predicted = batch["labels"][real], logits.argmax(-1)[real]  # (B_real,) each
        losses = F.cross_entropy(logits, batch["labels"], reduction="none")[real]
        n = int(real.sum())
        sums = {"loss": _pair(losses.sum(), n), "accuracy": _pair((predicted == labels).sum(), n)}
        # F1 of class c = 2·TP / (2·TP + FP + FN): a ratio of counts, so it adds up over batches and processes
        for c in range(len(self.labels)):
            tp = ((predicted == c) & (labels == c)).sum()
            wrong = ((predicted == c) != (labels == c)).sum()  # false positives + false negatives
            sums[f"f1/{c}"] = _pair(2 * tp, 2 * tp + wrong)
        return sums

    def finish(self, sums):
        """Loss, accuracy and macro F1: the mean F1 over the classes that the validation examples hold or
        the model predicts (a class with neither has no F1). On unbalanced classes, accuracy can look good
        while small classes are never found; macro F1 weighs every class alike."""
        sums = dict(sums)
        per_class = [sums.pop(f"f1/{c}") for c in range(len(self.labels))]
        out = super().finish(sums)
        scores = [float(v[0] / v[1]) for v in per_class if float(v[1]) > 0]
        out["macro_f1"] = sum(scores) / len(scores) if scores else float("nan")
        return out

    def sample(self, model, device):
        batch = {k: v.to(device) for k, v in self.batch(VAL, 0, 0, slice(0, 1)).items()}
        probs = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]).logits.float().softmax(-1)[0]
        top = probs.topk(min(3, len(self.labels)))
        guesses = ", ".join(f"{self.labels[int(i)]} ({float(q):.2f})" for q, i in zip(*top, strict=True))
        text = self.tokenizer.decode([t for t in batch["input_ids"][0].tolist() if t != self.pad_id][1:-1],
                                     skip_special_tokens=False)  # (a pair's [SEP] shows where the second text starts)
        return f"text:      {text[:300]}\nclass:     {self.labels[int(batch['labels'][0])]}\npredicted: {guesses}"


OBJECTIVES = {"gpt": CausalLMObjective, "bert": MaskedLMObjective, "t5": SpanCorruptionObjective}


def make_objective(cfg: TrainConfig, data: dict[str, TokenSplit], tokenizer, splits: dict[str, list] | None = None,
                   labels: list[str] | None = None) -> Objective:
    """The run's objective. Classification also needs the examples' classes (``splits``: the
    (text, class name) pairs the token cache was made from) and, for a saved classifier, its ``labels``."""
    if cfg.task == "text-to-text":
        return (PromptCompletionObjective if cfg.family == "gpt" else TextToTextObjective)(cfg, data, tokenizer)
    if cfg.task == "classify":
        if splits is None:
            raise ValueError("classification needs the examples' classes (splits)")
        return ClassificationObjective(cfg, data, tokenizer, {k: [p.target for p in v] for k, v in splits.items()},
                                       labels)
    return OBJECTIVES[cfg.family](cfg, data, tokenizer)


def corpus_splits(cfg: TrainConfig) -> dict[str, list]:
    """The run's training and validation data: texts (``split_corpus``), or for text-to-text
    fine-tuning (input, target) pairs (``minitransformer.data.pairs``)."""
    if cfg.task in ("text-to-text", "classify"):
        from minitransformer.data.pairs import pair_splits

        splits = pair_splits(cfg.corpus, cfg.val_corpus, cfg.val_fraction)
        if cfg.task == "text-to-text" and any(p.text_pair is not None for v in splits.values() for p in v):
            raise ValueError("text_pair (a second input text) is for classifying pairs with BERT; for a text-to-text "
                             "model write both texts into the input")
        return splits
    return split_corpus(cfg.corpus, cfg.val_fraction)


def split_texts(cfg: TrainConfig, splits: dict[str, list]) -> list[str]:
    """Every text of ``splits`` (both sides of each pair), e.g. to look for characters a tokenizer lacks."""
    if cfg.task == "text-to-text":
        return [t for pairs in splits.values() for p in pairs for t in (p.source, p.target)]
    if cfg.task == "classify":  # the class names are never tokenized
        return [t for pairs in splits.values() for p in pairs for t in (p.source, p.text_pair) if t is not None]
    return [t for texts in splits.values() for t in texts]


def documents_for_cache(cfg: TrainConfig, splits: dict[str, list]) -> dict[str, list[list[str]]]:
    """What the token cache stores per split: sentences per document for BERT, the two sides of each
    pair for text-to-text, whole texts otherwise."""
    if cfg.task == "text-to-text":
        return {name: [[p.source, p.target] for p in pairs] for name, pairs in splits.items()}
    if cfg.task == "classify":  # one piece, or two for a pair of texts
        return {name: [[p.source] + ([p.text_pair] if p.text_pair is not None else []) for p in pairs]
                for name, pairs in splits.items()}
    if cfg.family == "bert":
        return {name: sentence_documents(texts, cfg.corpus) for name, texts in splits.items()}
    return {name: [[t] for t in texts if t] for name, texts in splits.items()}


def unknown_characters(tokenizer, texts: Sequence[str]) -> list[str]:
    """The characters of ``texts`` (other than whitespace) that ``tokenizer`` cannot write: encoded
    alone, they give its unknown token, or an error (a character tokenizer without one)."""
    unk = getattr(tokenizer, "unk_id", None)
    if unk is None and getattr(tokenizer, "unk_token", None) is not None:
        unk = tokenizer.token_to_id(tokenizer.unk_token)
    chars = set().union(*map(set, texts)) if texts else set()
    missing = []
    for c in sorted(chars):
        if c.isspace():
            continue
        try:
            ids = tokenizer.encode(c)
        except ValueError:
            missing.append(c)
            continue
        if unk is not None and unk in ids:
            missing.append(c)
    return missing

