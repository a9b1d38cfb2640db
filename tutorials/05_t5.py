# %% [markdown]
# # 05 · T5: every task is text to text
#
# T5 (Raffel et al. 2020) is the original encoder–decoder Transformer, tidied up and trained at
# scale with one idea: *every* task is "text in, text out". Translation, summarisation,
# classification, even regression are written as an input string with a task prefix and a target
# string (§2.4): `"translate English to SQL: How many employees work in Sales?"` →
# `"SELECT COUNT(*) FROM ..."`.
#
# The encoder reads the input bidirectionally (like BERT); the decoder writes the output left to
# right (like GPT) and, in every layer, attends to the encoder's output through **cross-attention**.
# In this tutorial we
#
# 1. see T5's pretraining objective, **span corruption** (§3.1.4, §3.3.4), on a sentence;
# 2. plot T5's **relative position buckets** (§2.1): no position embeddings, a learned bias per
#    (head, distance bucket) added to the attention scores;
# 3. run the whole text-to-SQL pipeline on a tiny T5: tokenizer, batches, training, generation and
#    **execution accuracy** (the predicted SQL is run and its rows compared with the gold query's).
#
# Run: `python tutorials/05_t5.py` (about a minute on a 2-core CPU), or cell by cell.
# `MT_TUTORIAL_FAST=1` runs it in seconds; `MT_TUTORIAL_OUTPUT=folder` puts the plots elsewhere
# (both read by `minitransformer/tutorial.py`).

# %%
# ruff: noqa: E402  (a notebook: each cell imports what it first needs)
import time

import matplotlib.pyplot as plt
import torch

import minitransformer as mt
from minitransformer.tutorial import FAST, figure_saver

save = figure_saver("05", globals().get("__file__"))  # save(fig, name) -> _output/05_<name>.png
torch.manual_seed(0)


# %% [markdown]
# ## 1. Span corruption
#
# BERT masks single tokens; T5 drops whole **spans**. About 15% of the tokens are hidden in spans of
# mean length 3. Each span is replaced in the input by one *sentinel* token (`<extra_id_0>`,
# `<extra_id_1>`, ...), and the target lists each sentinel followed by the tokens it hid. The
# target is short (only the hidden tokens plus sentinels), so pretraining is cheap, and the model
# must generate several tokens per blank, like the decoder will later.
#
# To keep it readable we use words as tokens here (the opening of Hamlet's soliloquy): the ids are
# positions in a small word list, and the sentinels get the ids after it.

# %%
from minitransformer.data import load_plays, random_spans_noise_mask, reconstruct, span_corruption

hamlet = load_plays()["Hamlet"]
soliloquy = hamlet.index("To be, or not to be")
words = hamlet[soliloquy:].split()[:60]  # the first 60 words of the soliloquy
vocab = sorted(set(words))
word_id = {w: i for i, w in enumerate(vocab)}
sentinels = list(range(len(vocab), len(vocab) + 10))  # <extra_id_0>, <extra_id_1>, ...
EOS = len(vocab) + 10
names = vocab + [f"<extra_id_{i}>" for i in range(10)] + ["</s>"]

ids = [word_id[w] for w in words]
inputs, targets = span_corruption(ids, noise_density=0.15, mean_noise_span_length=3.0, sentinel_ids=sentinels,
                                  eos_id=EOS, generator=torch.Generator().manual_seed(4))
print("original:", " ".join(words), "\n")
print("input:   ", " ".join(names[i] for i in inputs), "\n")
print("target:  ", " ".join(names[i] for i in targets), "\n")
assert reconstruct(inputs, targets, sentinels, EOS) == ids  # nothing is lost: input + target = original
print(f"{len(ids)} tokens -> input {len(inputs)}, target {len(targets)}")

# %% [markdown]
# Where do the spans fall? Each row below is one draw of the noise mask for a 100-token text
# (dark = hidden). The counts are fixed: 15 hidden tokens (15% of 100) in 5 spans (15 / a mean span
# length of 3). Chance decides only where the spans fall and how long each one is. (T5's way of
# drawing them also always keeps the first token and hides the last.)

# %%
masks = torch.tensor([random_spans_noise_mask(100, 0.15, 3.0, torch.Generator().manual_seed(s)) for s in range(8)])
fig, ax = plt.subplots(figsize=(8, 2.2))
ax.imshow(masks, cmap="Greys", aspect="auto")
ax.set_xlabel("token position")
ax.set_ylabel("draw")
ax.set_title(f"span corruption noise masks: {masks.sum(1).float().mean():.0f} of 100 tokens hidden per draw")
save(fig, "noise_masks")

# %% [markdown]
# ## 2. Relative position buckets
#
# GPT and BERT add a learned vector for each *absolute* position to the token embeddings. T5 instead
# adds, inside every attention layer, a learned scalar to the score of query i and key j that depends
# only on the offset j − i (Raffel et al. 2020 §2.1, after Shaw et al. 2018). Offsets are grouped into
# 32 buckets: small offsets get a bucket each, larger ones share logarithmically wider buckets, and
# everything beyond 128 shares the last one. The encoder splits the buckets between "before" and
# "after"; the decoder, which cannot look ahead, spends all of them on the past. One table of
# 32 × n_heads numbers per stack, shared by its layers.

# %%
from minitransformer.nn import relative_position_bucket

offsets = torch.arange(-160, 161)
bi = relative_position_bucket(offsets, bidirectional=True, num_buckets=32, max_distance=128)
causal = relative_position_bucket(offsets, bidirectional=False, num_buckets=32, max_distance=128)
for off in (-200, -20, -3, 0, 3, 20, 200):
    one = torch.tensor([off])
    print(f"offset {off:5d}: encoder bucket {relative_position_bucket(one).item():2d}, "
          f"decoder bucket {relative_position_bucket(one, bidirectional=False).item():2d}")

grid = torch.arange(48)[None, :] - torch.arange(48)[:, None]  # key position - query position
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
axes[0].step(offsets, bi, where="mid", label="encoder (bidirectional)")
axes[0].step(offsets, causal, where="mid", label="decoder (causal)")
axes[0].axvline(0, c="gray", lw=0.5)
axes[0].set_xlabel("offset = key position − query position")
axes[0].set_ylabel("bucket")
axes[0].set_title("exact buckets near 0, logarithmic beyond, one for all ≥ 128")
axes[0].legend(fontsize=8)
im = axes[1].imshow(relative_position_bucket(grid), cmap="viridis")
axes[1].set_xlabel("key position")
axes[1].set_ylabel("query position")
axes[1].set_title("encoder buckets for a 48-token input")
plt.colorbar(im, ax=axes[1], fraction=0.046)
save(fig, "relative_buckets")

# %% [markdown]
# The right-hand picture is constant along every diagonal: the bucket, and so the bias, depends on
# j − i only (a *Toeplitz* matrix). A T×T bias therefore has just 2T − 1 distinct values, and
# `RelativePositionBias` looks up only those and lays them out along the diagonals; in training its
# gradient collects from 2T − 1 entries instead of T² (`minitransformer/nn/position.py`).
#
# *Try it yourself:* `minitransformer exercises start 7` — write `relative_position_bucket`.
#
# ## 3. Text to SQL, end to end
#
# `minitransformer.data.make_sql_task()` builds an offline task: questions about a small generated
# database (employees, departments, projects), each with the gold SQL. Held-out questions use
# queries the training set never contains. We score by **execution**: a prediction is right if it
# returns the same rows as the gold query, whatever its spelling.
#
# The pipeline:
#
# 1. a byte-level BPE tokenizer trained on the task's text, with T5's special tokens
#    `<pad>` (id 0, also the decoder's start token) and `</s>` (id 1, end of sequence);
# 2. batches: padded inputs with an attention mask; labels = target + `</s>`, padded with −100;
#    the model shifts the labels right to make the decoder's input (teacher forcing);
# 3. a tiny T5 (2 encoder + 2 decoder layers, d_model 128) trained with AdamW for 200 steps;
# 4. greedy generation on the held-out questions, decoded and executed.
#
# The model is far too small and briefly trained to be good; the point is to see every step work.

# %%
from minitransformer.data import execution_match, make_sql_task
from minitransformer.tokenizers import BPETokenizer

task = make_sql_task(seed=0)
print(f"{len(task.train)} training pairs, {len(task.heldout)} held-out; an example:")
print("  ", task.train[0].source)
print("  ", task.train[0].target)
print(task.database.schema())

tok = BPETokenizer.train([p.source for p in task.train] + [p.target for p in task.train], vocab_size=400,
                         special_tokens=["<pad>", "</s>", "<unk>"], backend="hf")
PAD, EOS = tok.token_to_id("<pad>"), tok.token_to_id("</s>")
print(f"tokenizer: {tok.vocab_size} tokens; <pad> = {PAD}, </s> = {EOS}; "
      f"a target is {len(tok.encode(task.train[0].target))} tokens for {len(task.train[0].target)} characters")


def make_batch(pairs) -> dict[str, torch.Tensor]:
    """Sources -> input_ids + attention_mask (padded with <pad>); targets -> labels (padded with -100)."""
    sources = tok.encode_batch([tok.encode(p.source) + [EOS] for p in pairs], pad_token_id=PAD)
    targets = tok.encode_batch([tok.encode(p.target) + [EOS] for p in pairs], pad_token_id=PAD)
    labels = targets["input_ids"].masked_fill(targets["attention_mask"] == 0, -100)
    return {"input_ids": sources["input_ids"], "attention_mask": sources["attention_mask"], "labels": labels}


cfg = mt.T5Config(vocab_size=tok.vocab_size, d_model=128, d_kv=32, n_heads=4, d_ff=256, n_layers=2, dropout=0.0,
                  max_seq_len=128, pad_token_id=PAD, eos_token_id=EOS, decoder_start_token_id=PAD)
model = mt.T5(cfg)
steps, batch_size = (4, 8) if FAST else (200, 32)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)  # linear decay to 0
gen = torch.Generator().manual_seed(0)
print(f"T5 with {mt.count_parameters(model):,} parameters; {steps} steps of {batch_size} pairs")

losses = []
start = time.perf_counter()
for step in range(1, steps + 1):
    rows = torch.randint(0, len(task.train), (batch_size,), generator=gen).tolist()
    loss = model(**make_batch([task.train[i] for i in rows])).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    losses.append(loss.item())
    if step % 25 == 0 or step == steps:
        print(f"step {step:4d}  loss {loss.item():.3f}")
print(f"trained in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# Now generate SQL for the held-out questions. `T5.generate` runs the encoder once, then the decoder
# one token at a time from `<pad>` (the start token) until `</s>`, keeping a KV cache (tutorial 03).

# %%
heldout = task.heldout[:8] if FAST else task.heldout
batch = make_batch(heldout)
max_target = max(len(tok.encode(p.target)) for p in task.train) + 2
out = model.generate(batch["input_ids"], attention_mask=batch["attention_mask"],
                     max_new_tokens=8 if FAST else max_target)
predictions = [tok.decode(row.tolist(), skip_special_tokens=True) for row in out]
correct = [execution_match(pred, pair.target, task.database) for pred, pair in zip(predictions, heldout, strict=True)]
exact = [pred == pair.target for pred, pair in zip(predictions, heldout, strict=True)]
print(f"held-out execution accuracy: {sum(correct)}/{len(correct)} = {sum(correct) / len(correct):.0%}  "
      f"(exact string match {sum(exact) / len(exact):.0%})")
for pred, pair, ok in list(zip(predictions, heldout, correct, strict=True))[:4]:
    print(f"\n{'RIGHT' if ok else 'WRONG'}  {pair.source}\n  predicted: {pred}\n  gold:      {pair.target}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.3), gridspec_kw={"width_ratios": [2, 1]})
axes[0].plot(range(1, steps + 1), losses)
axes[0].set_yscale("log")
axes[0].set_xlabel("step")
axes[0].set_ylabel("cross-entropy per target token")
axes[0].set_title("training a tiny T5 on text-to-SQL")
axes[1].bar(["execution", "exact string"], [sum(correct) / len(correct), sum(exact) / len(exact)])
axes[1].set_ylim(0, 1)
axes[1].set_title(f"held-out accuracy ({len(heldout)} questions)")
save(fig, "text_to_sql")

# %% [markdown]
# Execution accuracy is never below exact match: a different but equivalent query still counts.
# Try more steps, a larger `d_model`, or beam search (`model.generate(..., num_beams=4)`) and
# watch the held-out accuracy move.
#
# This model starts from random weights. Would span-corruption pretraining first help?
# `python benchmarks/t5_text_to_text.py --start both` pretrains for 2.5 CPU minutes on the embedded
# Shakespeare corpus and fine-tunes both starts side by side. The answer at this scale is "no, not
# yet": after minutes of pretraining the decoder still ignores its encoder (the script checks this
# by feeding each target another row's input: the loss does not change), and at too high a
# pretraining learning rate (`--pretrain-lr 3e-3`; the default is 1e-3) the pretrained start is even
# *worse* than random weights (`benchmarks/results/t5_text_to_text.md`). Transfer is what T5's 2^19 steps of 65k tokens bought.
#
# The same script fine-tunes a second task, English -> Pig Latin ("there" -> "erethay"). Its exact
# match stays near 0%, yet the model is not clueless: `minitransformer.text_to_text.word_accuracy`
# counts the words in the right place: about 10% of them after the script's 90 s of fine-tuning,
# and about 30% after five minutes on all 19,400 training lines (a separate run). The rule
# is about letters, but the model sees subword pieces, and must learn how each piece is spelled
# from examples alone: the same reason large language models stumble on spelling games.
#
# From the command line, the same recipe with the training loop of `minitransformer pretrain`
# (checkpoints, `--resume`, a loss plot, exact match and execution accuracy at every evaluation):
#
# ```bash
# minitransformer pretrain t5 --out runs/t5
# minitransformer finetune t5 --from runs/t5 --data sql --out runs/t5-sql     # or --data my_pairs.jsonl
# minitransformer generate --run runs/t5-sql --prompt "translate English to SQL: Who works in Sales?"
# ```
#
# ## What to remember
#
# - T5 = encoder (bidirectional, like BERT) + decoder (causal, like GPT) + cross-attention from every
#   decoder layer to the encoder output; pre-LN with RMSNorm, no biases.
# - Positions enter as a learned bias per head and *relative distance bucket*, not as embeddings.
# - Pretraining hides spans behind sentinels; fine-tuning writes every task as text to text.
#
# Next: `06_scale.py` — from these toy models to GPT-3 and T5-11B.
