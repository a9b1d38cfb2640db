"""BPE tokenizer speed: training and encoding, ours (pure Python) vs a naive trainer vs ``tokenizers``.

    python benchmarks/bench_tokenizers.py            # ~3-5 min on a 2-core CPU; writes benchmarks/results/tokenizers.md
    python benchmarks/bench_tokenizers.py --quick    # a 100 KB slice, one round: checks the script runs

Training, on the embedded Shakespeare corpus (``load_corpus("shakespeare")``, ~1 MB), at vocabulary
sizes 512 / 4096 / 16384, byte-level, no special tokens, ``min_frequency=0`` (tokenizers' default):

- ours: ``BPETokenizer.train(..., backend="python")`` -- incremental pair counts and a lazy heap;
- naive: the same algorithm recounting every pair of every word after each merge (defined below,
  the textbook loop). It runs at 512 only; its 4096 figure is extrapolated from its time per merge
  at 512 times the number of merges at 4096 (an overestimate of a few per cent at most: later merges
  recount slightly shorter words);
- tokenizers: ``tokenizers.Tokenizer`` + ``BpeTrainer`` called directly, on the same text;
- ours, hf backend: ``BPETokenizer.train(..., backend="hf")`` (the same trainer plus our wrapping).

All four must produce the same merges (checked). Encoding throughput is tokens per second over the
whole corpus: ours (pure Python, with its word cache), the naive encoder (the same merge loop on
every word, no cache), ours through the hf backend, and tokenizers directly. Implementations run
alternately in one process, so they share the machine's load; each figure is the median of the
rounds. ``tokenizers`` uses its own thread pool (both cores here).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

from tokenizers import Tokenizer as HFTokenizer  # noqa: E402
from tokenizers import models, pre_tokenizers, trainers  # noqa: E402

from minitransformer.data import load_corpus  # noqa: E402
from minitransformer.tokenizers import BPETokenizer  # noqa: E402
from minitransformer.tokenizers.bpe import bytes_to_unicode, pretokenize  # noqa: E402

VOCAB_SIZES = (512, 4096, 16384)
RESULTS = Path(__file__).parent / "results" / "tokenizers.md"


# ---- the baselines -----------------------------------------------------------------------------------

def naive_train(text: str, vocab_size: int) -> list[tuple[str, str]]:
    """Textbook BPE training: after every merge, count every pair of every word again.

    Same rules as ours and tokenizers (byte-level, count ties go to the smallest pair of ids), so the
    merges must come out identical; only the bookkeeping differs.
    """
    id_to_token = sorted(bytes_to_unicode().values())
    token_to_id = {t: i for i, t in enumerate(id_to_token)}
    byte_ids = [token_to_id[c] for c in bytes_to_unicode().values()]
    words = {tuple(byte_ids[b] for b in w.encode("utf-8")): n for w, n in Counter(pretokenize(text)).items()}
    merges = []
    while len(token_to_id) < vocab_size:
        counts: dict[tuple[int, int], int] = defaultdict(int)
        for word, n in words.items():
            for pair in pairwise(word):
                counts[pair] += n
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        new_token = id_to_token[best[0]] + id_to_token[best[1]]
        if new_token not in token_to_id:
            token_to_id[new_token] = len(id_to_token)
            id_to_token.append(new_token)
        new_id = token_to_id[new_token]
        merges.append((id_to_token[best[0]], id_to_token[best[1]]))
        merged_words = {}
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged_words[tuple(out)] = n
        words = merged_words
    return merges


def naive_encode(tok: BPETokenizer, text: str) -> list[int]:
    """Our merge loop on every pre-tokenized word, without the word cache."""
    ids: list[int] = []
    for word in pretokenize(text):
        tok._cache.clear()
        ids.extend(tok._bpe(word))
    return ids


def hf_direct_train(text: str, vocab_size: int) -> HFTokenizer:
    """What a `tokenizers` user writes for byte-level BPE."""
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=0, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    hf.train_from_iterator([text], trainer=trainer)
    return hf


def hf_encode_ids(hf: HFTokenizer, text: str) -> list[int]:
    return hf.encode(text, add_special_tokens=False).ids


def hf_merges(hf: HFTokenizer) -> list[tuple[str, str]]:
    import json

    merges = json.loads(hf.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


# ---- measuring ----------------------------------------------------------------------------------------

def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100 KB of the corpus, 1 round, no file written")
    args = parser.parse_args(argv)
    text = load_corpus("shakespeare")
    rounds = args.rounds
    if args.quick:
        text, rounds = text[:100_000], 1
    print(f"corpus: {len(text):,} characters; {rounds} round(s)", flush=True)
    pretokenize("warm up")  # builds our regex once (a fraction of a second), outside the timings

    train_rows, encode_rows, notes = [], [], []
    naive_per_merge = None
    for vocab_size in VOCAB_SIZES:
        times = defaultdict(list)
        for _ in range(rounds):  # alternate, so every implementation sees the same machine load
            t, ours = timed(BPETokenizer.train, text, vocab_size, [], "python", 0)
            times["ours"].append(t)
            t, direct = timed(hf_direct_train, text, vocab_size)
            times["tokenizers"].append(t)
            t, fast = timed(BPETokenizer.train, text, vocab_size, [], "hf", 0)
            times["ours_hf"].append(t)
        same = ours.merges == hf_merges(direct) == fast.merges and ours.vocab == direct.get_vocab()
        n_merges = len(ours.merges)
        if vocab_size == VOCAB_SIZES[0]:
            t_naive, naive_merges = timed(naive_train, text, vocab_size)
            same = same and naive_merges == ours.merges
            naive_per_merge = t_naive / max(n_merges, 1)
            naive, naive_label = t_naive, f"{t_naive:.1f}"
        elif vocab_size == 4096:
            naive = naive_per_merge * n_merges
            naive_label = f"~{naive:.0f} (extrapolated)"
        else:
            naive, naive_label = None, "-"
        med = {k: statistics.median(v) for k, v in times.items()}
        speedup = f"{naive / med['ours']:.0f}x" if naive else "-"
        train_rows.append(
            f"| {vocab_size} | {n_merges} | {med['ours']:.2f} | {naive_label} | {speedup} | {med['tokenizers']:.2f} "
            f"| {med['ours_hf']:.2f} | {med['ours_hf'] / med['tokenizers']:.2f} | {'yes' if same else 'NO'} |")
        print(train_rows[-1], flush=True)

        # Encoding the whole corpus with the trained vocabulary.
        etimes = defaultdict(list)
        for _ in range(rounds):
            fresh = BPETokenizer(ours.vocab, ours.merges)  # empty word cache: count the warm-up too
            t, ids = timed(fresh.encode, text)
            etimes["ours"].append(t)
            t, hf_ids = timed(hf_encode_ids, direct, text)
            etimes["tokenizers"].append(t)
            t, fast_ids = timed(fast.encode, text)
            etimes["ours_hf"].append(t)
        t_naive_enc, naive_ids = timed(naive_encode, BPETokenizer(ours.vocab, ours.merges), text)
        emed = {k: statistics.median(v) for k, v in etimes.items()}
        same_ids = ids == hf_ids == fast_ids == naive_ids
        n = len(ids)
        encode_rows.append(
            f"| {vocab_size} | {n:,} | {n / emed['ours']:,.0f} | {n / t_naive_enc:,.0f} | {n / emed['tokenizers']:,.0f} "
            f"| {n / emed['ours_hf']:,.0f} | {'yes' if same_ids else 'NO'} |")
        print(encode_rows[-1], flush=True)

    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, no GPU"
    import tokenizers

    report = "\n".join([
        "# BPE tokenizer benchmark",
        "",
        f"`python benchmarks/bench_tokenizers.py` on {machine}; tokenizers {tokenizers.__version__}.",
        f"Corpus: the embedded Shakespeare, {len(text):,} characters. Median of {rounds} alternating rounds "
        "(the naive trainer and encoder: one run). Byte-level, no special tokens, `min_frequency=0`.",
        "",
        "## Training (seconds, pre-tokenization included)",
        "",
        "| vocab | merges | ours (Python) | naive recount | ours vs naive | tokenizers | ours, hf backend "
        "| hf backend / tokenizers | same merges |",
        "|---|---|---|---|---|---|---|---|---|",
        *train_rows,
        "",
        "The naive trainer runs at 512 only; at 4096 its time is its time per merge at 512 times the number "
        "of merges (an overestimate of a few per cent: later merges recount slightly shorter words).",
        "",
        "## Encoding the whole corpus (tokens per second)",
        "",
        "| vocab | tokens | ours (Python, word cache) | naive (no cache) | tokenizers | ours, hf backend | same ids |",
        "|---|---|---|---|---|---|---|",
        *encode_rows,
        *notes,
        "",
    ])
    if args.quick:
        print(report)
    else:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report, encoding="utf-8")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
