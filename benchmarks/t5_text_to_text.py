"""Text-to-text transfer with a tiny T5 in a few CPU minutes: span-corruption pretraining, then two tasks.

    python benchmarks/t5_text_to_text.py                      # ~6 minutes on 2 CPU cores
    python benchmarks/t5_text_to_text.py --start both         # also fine-tune from scratch, for comparison
    python benchmarks/t5_text_to_text.py --start scratch      # only from scratch (run beside the default)
    python benchmarks/t5_text_to_text.py --out benchmarks/results/t5_text_to_text.md

1. A Unigram tokenizer with T5's special tokens, trained on the embedded Shakespeare corpus and the
   tasks' *training* texts (repeated so their words get pieces of their own).
2. A tiny T5 (v1.0 shape) pretrained with span corruption on the corpus (Raffel et al. 2020 §3.1.4),
   new spans on every pass; then a check of whether its decoder reads the encoder at all (the loss
   with each row's own input vs another row's: equal means it does not).
3. Fine-tuned separately (from the same pretrained weights) on
   (a) English question -> SQL over a small generated database (``minitransformer.data.sql_task``),
   (b) English -> Pig Latin, a rule-based "translation" (``minitransformer.data.translation_task``).
4. Scored on the held-out splits with greedy decoding: exact match, word accuracy (words in the
   right place: partial credit that exact match does not give), and for SQL execution accuracy
   (the predicted query returns the gold query's rows in sqlite).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import time

import torch

from minitransformer.data.corpus import load_corpus
from minitransformer.data.sql_task import make_sql_task
from minitransformer.data.translation_task import make_translation_task
from minitransformer.models.config import T5Config
from minitransformer.models.t5 import T5
from minitransformer.text_to_text import (
    TrainSettings,
    evaluate,
    finetune,
    pretrain_span_corruption,
    span_corruption_examples,
    train_tokenizer,
)


@torch.no_grad()
def encoder_reliance(model: T5, tokenizer, text: str, rows: int = 256) -> tuple[float, float]:
    """Span-corruption loss with each row's own input, and with the next row's input instead.

    If the two are equal, the decoder predicts the hidden spans without reading the encoder: it has
    learned only what targets look like in general (sentinels, frequent words), not the text.
    """
    data = span_corruption_examples(tokenizer, text, 64, torch.Generator().manual_seed(1234))
    n = min(rows, data["input_ids"].shape[0])
    ids, mask, labels = data["input_ids"][:n], data["attention_mask"][:n], data["labels"][:n]
    model.eval()
    own = model(ids, attention_mask=mask, labels=labels).loss.item()
    other = model(ids.roll(1, 0), attention_mask=mask.roll(1, 0), labels=labels).loss.item()
    return own, other


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrain-seconds", type=float, default=150)
    p.add_argument("--finetune-seconds", type=float, default=90, help="per task")
    p.add_argument("--vocab-size", type=int, default=2000)
    p.add_argument("--pretrain-lr", type=float, default=1e-3,
                   help="peak learning rate of the pretraining (3e-3 made the pretrained start worse than random "
                        "weights: benchmarks/results/t5_text_to_text.md)")
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.0, help="dropout in pretraining and fine-tuning")
    p.add_argument("--translation-examples", type=int, default=None,
                   help="cap on Pig Latin pairs, train and held-out together (default: all, ~19,400 train lines); "
                        "with 3,600 the model learns the training lines by heart instead of the rule")
    p.add_argument("--translation-heldout", type=int, default=400, help="score on the first N held-out lines")
    p.add_argument("--start", choices=["pretrained", "scratch", "both"], default="pretrained",
                   help="fine-tune the span-corruption pretrained model, a randomly initialised one, or both")
    p.add_argument("--pretrain-on", choices=["corpus", "corpus+tasks"], default="corpus",
                   help="span-corrupt the Shakespeare corpus only, or also the tasks' training texts as plain, "
                        "unpaired lines (in-domain unlabeled data, Raffel et al. 2020 §3.4)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the results table (markdown) here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    corpus = load_corpus("shakespeare")
    sql = make_sql_task(seed=args.seed)
    pig = make_translation_task(max_examples=args.translation_examples)
    pig = dataclasses.replace(pig, heldout=pig.heldout[:args.translation_heldout])
    task_texts = [t for pair in sql.train + pig.train for t in (pair.source, pair.target)]
    tokenizer = train_tokenizer(corpus.splitlines() + task_texts * 10, vocab_size=args.vocab_size)
    print(f"tokenizer: {tokenizer.vocab_size} Unigram pieces ({time.perf_counter() - t_start:.0f}s)")

    cfg = T5Config(vocab_size=tokenizer.vocab_size, d_model=128, d_kv=32, n_heads=4, d_ff=512, n_layers=3,
                   dropout=args.dropout, max_seq_len=128)
    torch.manual_seed(args.seed)
    pretrained = T5(cfg)
    n_params = sum(q.numel() for q in pretrained.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters")
    starts, n_pre_steps, reliance = [], 0, None
    if args.start in ("pretrained", "both"):
        pre = TrainSettings(steps=100_000, batch_size=32, lr=args.pretrain_lr, warmup_steps=100,
                            time_budget_s=args.pretrain_seconds, seed=args.seed, log_every=100)
        text = corpus if args.pretrain_on == "corpus" else corpus + "\n" + "\n".join(task_texts)
        losses = pretrain_span_corruption(pretrained, tokenizer, text, pre)
        n_pre_steps = len(losses)
        print(f"pretraining: {n_pre_steps} steps, final loss {sum(losses[-20:]) / 20:.3f}")
        reliance = encoder_reliance(pretrained, tokenizer, corpus[-100_000:])
        print(f"span-corruption loss with each row's own input {reliance[0]:.3f}, with another row's input "
              f"{reliance[1]:.3f} (equal: the decoder does not read the encoder)")
        starts.append(("span-corruption pretrained", pretrained))
    if args.start in ("scratch", "both"):
        torch.manual_seed(args.seed + 1)
        starts.append(("random init (no pretraining)", T5(cfg)))

    rows = []
    for name, task, db, target_len in (("English -> SQL", sql, sql.database, 64),
                                       ("English -> Pig Latin", pig, None, 48)):
        for start_name, start in starts:
            model = copy.deepcopy(start)
            ft = TrainSettings(steps=100_000, batch_size=32, lr=args.finetune_lr, warmup_steps=50,
                               time_budget_s=args.finetune_seconds, seed=args.seed, log_every=100)
            losses = finetune(model, tokenizer, task.train, ft, max_target_len=target_len)
            result = evaluate(model, tokenizer, task.heldout, database=db, max_new_tokens=target_len)
            print(f"{name}, {start_name}: {len(losses)} steps, exact match {result['exact_match']:.1%}, "
                  f"word accuracy {result['word_accuracy']:.1%}"
                  + (f", execution accuracy {result['execution_accuracy']:.1%}" if db is not None else ""))
            for source, target, pred in result["examples"][:3]:
                print(f"   {source!r}\n     gold: {target!r}\n     pred: {pred!r}")
            rows.append((name, start_name, len(task.train), result, len(losses)))

    total = time.perf_counter() - t_start
    extra_text = " and the tasks' training texts (unpaired lines)" if args.pretrain_on != "corpus" else ""
    lines = [
        "# T5 text-to-text: span-corruption pretraining, then fine-tuning (CPU)",
        "",
        f"Command: `python benchmarks/t5_text_to_text.py --start {args.start} --pretrain-on {args.pretrain_on} "
        f"--pretrain-lr {args.pretrain_lr:g} --finetune-lr {args.finetune_lr:g}` "
        f"({torch.get_num_threads()} threads, {total / 60:.1f} minutes in all). Model: T5 v1.0 shape, "
        f"d_model 128, 3+3 layers, 4 heads of 32, d_ff 512, {n_params / 1e6:.2f}M parameters; Unigram "
        f"tokenizer of {tokenizer.vocab_size} pieces. Pretraining: {n_pre_steps} steps "
        f"({args.pretrain_seconds:.0f}s budget) of span corruption (15% noise, spans of 3, inputs of 64 tokens) "
        f"on the embedded Shakespeare corpus{extra_text}. "
        f"Fine-tuning: {args.finetune_seconds:.0f}s per task, AdamW, "
        "batch 32. Held-out splits never seen in training; greedy decoding."
        + (f" After pretraining, the span-corruption loss with each row's own input is {reliance[0]:.3f} and with "
           f"another row's input {reliance[1]:.3f} (equal: the decoder does not read the encoder)." if reliance else ""),
        "",
        "| task | start | train pairs | fine-tune steps | held-out n | exact match | word accuracy | execution accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, start_name, n_train, r, n_steps in rows:
        ex = f"{r['execution_accuracy']:.1%}" if r["execution_accuracy"] is not None else "-"
        lines.append(f"| {name} | {start_name} | {n_train} | {n_steps} | {r['n']} | {r['exact_match']:.1%} "
                     f"| {r['word_accuracy']:.1%} | {ex} |")
    report = "\n".join(lines) + "\n"
    print("\n" + report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(report)


if __name__ == "__main__":
    main()
