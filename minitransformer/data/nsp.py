"""Next-sentence prediction (NSP): BERT's second pretraining task (Devlin et al. 2019, §3.1 Task #2).

From each document we cut pairs of text segments (A, B). Half the time B is the text that really
follows A in the same document (IsNext); otherwise B is taken from a different document (NotNext).
The model reads ``[CLS] A [SEP] B [SEP]`` with segment (token-type) ids 0 for ``[CLS] A [SEP]`` and
1 for ``B [SEP]``, and classifies the ``[CLS]`` vector. The segments are spans of consecutive
sentences that fill a target length, not single linguistic sentences (App. A.2), cut the way
Google's ``create_pretraining_data.py`` does:

- Sentences are gathered from the document until they reach the target length (``max_len - 3``,
  or with probability ``short_seq_prob`` a random shorter length, so the model also sees short
  inputs as at fine-tuning time).
- A random number of those sentences becomes A. For IsNext, the rest becomes B; for NotNext, B
  is read from a random sentence of another document up to the remaining length, and the unused
  sentences go back to be used for the next pair.
- If a pair is too long, the longer segment loses tokens until it fits: A from its start, B from
  its end, so that B still begins where A ends. (Google's script cuts either end at random, which
  can open a gap between an IsNext A and B.)

Documents from the embedded corpus, one per play, sentences without speaker names or stage
directions (``tok`` being any tokenizer)::

    documents = [[tok.encode(s) for s in split_sentences("\\n".join(dialogue_lines(play)))]
                 for play in load_plays().values()]

Label convention, as in Hugging Face's ``BertForPreTraining``: ``nsp_labels`` is 0 for IsNext and
1 for NotNext (``nsp_batch`` does this conversion from the ``is_next`` booleans).
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

Pair = tuple[list[int], list[int], bool]   # (segment_a, segment_b, is_next)


def _uniform(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """A random int in [low, high], both ends included."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def truncate_pair(a: Sequence[int], b: Sequence[int], max_tokens: int,
                  a_from_start: bool = False) -> tuple[list[int], list[int]]:
    """Longest-first truncation: drop the last token of the longer segment (A on ties) until
    ``len(a) + len(b) <= max_tokens``. Returns new lists.

    ``a_from_start``: A loses its first tokens instead, which keeps the junction A|B intact (for
    NSP pairs where B continues A).
    """
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    a, b = list(a), list(b)
    excess = len(a) + len(b) - max_tokens
    for _ in range(max(0, excess)):
        if len(a) >= len(b):
            a.pop(0 if a_from_start else -1)
        else:
            b.pop()
    return a, b


def make_nsp_pairs(
    documents: Sequence[Sequence[Sequence[int]]],
    max_len: int = 128,
    generator: torch.Generator | None = None,
    short_seq_prob: float = 0.1,
    next_probability: float = 0.5,
) -> list[Pair]:
    """Cut ``documents`` into NSP pairs ``(segment_a, segment_b, is_next)``.

    Args:
        documents: a list of documents, each a list of sentences, each a list of token ids.
            Empty sentences and documents are skipped; at least two non-empty documents are needed
            (a NotNext segment B always comes from a different document).
        max_len: the framed length ``[CLS] A [SEP] B [SEP]``; A and B together get ``max_len - 3``.
        generator: a ``torch.Generator`` for reproducible pairs. Call again (the generator moves
            on) for fresh pairs each epoch.
        short_seq_prob: chance that a document uses a random shorter target length (BERT: 0.1).
        next_probability: chance that a pair is IsNext (BERT: 0.5).

    Every pair's label is an independent draw with ``next_probability``: when an IsNext pair is
    due but only one sentence is left, that sentence is split in two (B continues A mid-sentence);
    only a one-token leftover falls back to NotNext.
    """
    if max_len < 5:
        raise ValueError(f"max_len must be >= 5 ([CLS] A [SEP] B [SEP] with one token each), got {max_len}")
    for name, p in (("short_seq_prob", short_seq_prob), ("next_probability", next_probability)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    docs = [[[int(t) for t in sentence] for sentence in doc if len(sentence) > 0] for doc in documents]
    docs = [doc for doc in docs if doc]
    if len(docs) < 2:
        raise ValueError(f"make_nsp_pairs needs at least 2 non-empty documents (NotNext takes B from "
                         f"another document), got {len(docs)}")

    max_tokens = max_len - 3
    pairs: list[Pair] = []
    for d, sentences in enumerate(docs):
        target = max_tokens
        if _uniform(generator) < short_seq_prob:
            target = _randint(2, max_tokens, generator)

        chunk: list[list[int]] = []
        length = 0
        i = 0
        while i < len(sentences):
            chunk.append(sentences[i])
            length += len(sentences[i])
            if i == len(sentences) - 1 or length >= target:
                is_next = _uniform(generator) < next_probability
                a_end = _randint(1, len(chunk) - 1, generator) if len(chunk) >= 2 else 1
                a = [t for s in chunk[:a_end] for t in s]
                b: list[int] = []
                if is_next and len(chunk) >= 2:
                    b = [t for s in chunk[a_end:] for t in s]
                elif is_next and len(a) >= 2:            # one sentence left: split it
                    cut = _randint(1, len(a) - 1, generator)
                    a, b = a[:cut], a[cut:]
                else:
                    is_next = False
                    other = _randint(0, len(docs) - 2, generator)
                    other += other >= d                  # any document but this one
                    start = _randint(0, len(docs[other]) - 1, generator)
                    for s in docs[other][start:]:
                        b.extend(s)
                        if len(b) >= max(1, target - len(a)):
                            break
                    i -= len(chunk) - a_end              # put the unused sentences back
                a, b = truncate_pair(a, b, max_tokens, a_from_start=True)
                pairs.append((a, b, is_next))
                chunk, length = [], 0
            i += 1
    return pairs


def frame_pair(
    a: Sequence[int], b: Sequence[int], cls_id: int, sep_id: int, max_len: int | None = None,
    a_from_start: bool = False,
) -> tuple[list[int], list[int]]:
    """``[CLS] A [SEP] B [SEP]`` and its token-type ids (0 for ``[CLS] A [SEP]``, 1 for ``B [SEP]``).

    With ``max_len``, A and B are first truncated longest-first to ``max_len - 3`` tokens together
    (``a_from_start``: A loses its first tokens, see ``truncate_pair``).
    """
    if max_len is not None:
        if max_len < 3:
            raise ValueError(f"max_len must be >= 3 to hold [CLS] and two [SEP], got {max_len}")
        a, b = truncate_pair(a, b, max_len - 3, a_from_start=a_from_start)
    ids = [cls_id, *a, sep_id, *b, sep_id]
    token_type_ids = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    return ids, token_type_ids


def nsp_batch(
    pairs: Sequence[Pair], cls_id: int, sep_id: int, pad_id: int, max_len: int | None = None
) -> dict[str, torch.Tensor]:
    """Frame and pad pairs into tensors for ``Bert(...)``: ``input_ids``, ``token_type_ids``,
    ``attention_mask`` (N, L) with L the longest framed pair, and ``nsp_labels`` (N,) with
    0 = IsNext, 1 = NotNext. Apply ``mask_tokens`` to ``input_ids`` afterwards for MLM.
    A pair longer than ``max_len`` is cut as ``make_nsp_pairs`` cuts: A from its start, so that an
    IsNext B still begins where A ends."""
    if not pairs:
        raise ValueError("nsp_batch needs at least one pair")
    for i, (a, b, is_next) in enumerate(pairs):
        if not isinstance(is_next, bool):  # the string "False" is truthy: it would be labelled IsNext
            raise TypeError(f"pair {i}: is_next must be True or False, got {is_next!r}")
        for ids in (a, b):
            if any(isinstance(t, bool) or not isinstance(t, numbers.Integral) for t in ids):  # 1.9 would become 1
                raise TypeError(f"pair {i}: token ids must be integers")
    framed = [frame_pair(a, b, cls_id, sep_id, max_len, a_from_start=True) for a, b, _ in pairs]
    L = max(len(ids) for ids, _ in framed)
    input_ids = torch.full((len(pairs), L), pad_id, dtype=torch.long)    # (N, L)
    token_type_ids = torch.zeros((len(pairs), L), dtype=torch.long)      # (N, L)
    attention_mask = torch.zeros((len(pairs), L), dtype=torch.long)      # (N, L)
    for row, (ids, types) in enumerate(framed):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        token_type_ids[row, : len(types)] = torch.tensor(types)
        attention_mask[row, : len(ids)] = 1
    nsp_labels = torch.tensor([0 if is_next else 1 for _, _, is_next in pairs], dtype=torch.long)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids,
            "attention_mask": attention_mask, "nsp_labels": nsp_labels}
