# %% [markdown]
# # 07 · Where is a token? Four position schemes, side by side
#
# Attention compares every query with every key by a dot product. Nothing in that formula says
# where a token stands, so without help a Transformer reads "dog bites man" and "man bites dog"
# alike. Every model in this library therefore adds a *position scheme*, and the families differ
# in which one:
#
# | scheme | where the position goes | used by |
# |---|---|---|
# | learned absolute | a trained vector per position, added to the token | GPT-2, BERT |
# | sinusoidal | fixed sines and cosines, added to the token | the original Transformer |
# | relative bias | a learned number per offset, added to the scores | T5 (tutorial 05) |
# | RoPE | queries and keys turned by an angle that grows with position | GPT-NeoX, LLaMA |
# | ALiBi | a penalty proportional to distance, subtracted from the scores | BLOOM, MPT |
#
# `mt.GPTConfig(position=...)` gives the same GPT any of `"learned"`, `"sinusoidal"`, `"rope"` and
# `"alibi"`, so here we
#
# 1. see that attention alone cannot tell word order;
# 2. look inside each scheme: the sinusoid table, RoPE's rotation, ALiBi's penalties;
# 3. train four character GPTs that differ only in their scheme, on the same batches;
# 4. read them on windows four times longer than they were trained on: which schemes extrapolate?
#
# Papers: Vaswani et al. 2017 §3.5 (sinusoids), Radford et al. 2019 (GPT-2's learned table),
# Su et al. 2021 "RoFormer" §3.4 (RoPE), Press et al. 2022 "Train Short, Test Long" (ALiBi),
# Raffel et al. 2020 §2.1 (T5's relative bias).
#
# Run: `python tutorials/07_positions.py` (about two minutes on a 2-core CPU), or cell by cell.
# `MT_TUTORIAL_FAST=1` runs it in seconds; `MT_TUTORIAL_OUTPUT=folder` puts the plots elsewhere.

# %%
# ruff: noqa: E402  (a notebook: each cell imports what it first needs)
import dataclasses
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import minitransformer as mt
from minitransformer.nn import (
    ALiBi,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    alibi_slopes,
    apply_rotary,
)
from minitransformer.tutorial import FAST, figure_saver

save = figure_saver("07", globals().get("__file__"))  # save(fig, name) -> _output/07_<name>.png
torch.manual_seed(0)

# %% [markdown]
# ## 1. Attention alone sees a bag of tokens
#
# Take a one-layer GPT and switch its positions off (an ALiBi GPT whose penalty we remove). The
# last token attends over all earlier ones with weights that depend only on *which* tokens they
# are: shuffle the earlier tokens and its prediction does not move. With the penalty back, it does.
# (With two layers the earlier tokens' own outputs change with their prefixes, so even a
# position-free stack notices some reorderings, by accident rather than design.)

# %%
one_layer = mt.GPT(mt.GPTConfig(vocab_size=50, max_seq_len=32, d_model=32, n_layers=1, n_heads=4, dropout=0.0,
                                position="alibi")).eval()
with torch.no_grad():
    one_layer.layers[0].self_attn.qkv.weight.mul_(15)  # sharper attention than at initialisation
ids = torch.randint(0, 50, (1, 12))
shuffled = torch.cat([ids[:, :11][:, torch.randperm(11)], ids[:, 11:]], dim=1)  # same last token


def last_prediction_change(model: mt.GPT) -> float:
    with torch.no_grad():
        return (model(ids).logits[0, -1] - model(shuffled).logits[0, -1]).abs().max().item()


with_alibi = last_prediction_change(one_layer)
one_layer.alibi = None  # no position information at all
print(f"last-token logits move by {with_alibi:.2e} with ALiBi, by {last_prediction_change(one_layer):.2e} without")

# %% [markdown]
# ## 2. Inside each scheme
#
# **Absolute schemes** add a vector to each token before the first layer. GPT-2 *learns* one per
# position, so it has exactly `max_seq_len` of them and nothing for position 1,024 of a 1,024-token
# model. The original Transformer used fixed sines and cosines of geometrically spaced frequencies
# instead: `PE[pos, 2i] = sin(pos / 10000^(2i/d))`, `PE[pos, 2i+1] = cos(...)`. Our GPT also
# multiplies its token vectors by √d_model there, as Vaswani et al. do (§3.4): the sinusoids have
# size 1, the tokens start near 0.02, and unscaled the tokens would drown.
#
# The similarity between two sinusoid vectors depends only on how far apart they are (the right
# plot has constant diagonals). That is a hint of *relative* position, but it is hidden in the
# sum with the token, and the layers must learn to dig it out.

# %%
table = SinusoidalPositionalEncoding(128, 64).pe  # (positions, d_model)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
axes[0].imshow(table.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
axes[0].set(title="sinusoidal table: fast waves on top, slow below", xlabel="position", ylabel="feature")
axes[1].imshow(table @ table.T, cmap="viridis")
axes[1].set(title="PE[m] · PE[n]: a function of m − n", xlabel="position n", ylabel="position m")
save(fig, "sinusoids")

# %% [markdown]
# **RoPE** adds nothing to the tokens. In every layer it treats each head's features as pairs,
# each pair a point in a plane, and turns the pair at position m by the angle `m·θ_i`
# (θ_i = 10000^(-2i/d): fast turns for the first pairs, slow for the last). Turn a query by m·θ
# and a key by n·θ and their dot product only sees the difference, (m − n)·θ: attention scores
# depend on the offset, and the token vectors are left clean.
#
# Below: one query and one key placed at every pair of positions. Their score is constant along
# each diagonal, exactly, not just after learning.
#
# *Try it yourself:* `minitransformer exercises start 10` — write the rotation, `rotate(x, positions)`;
# the checker compares it with `RotaryEmbedding` + `apply_rotary` and tests the offset property.

# %%
d_head = 16
rope = RotaryEmbedding(d_head)
q, k = torch.randn(2, 1, 1, 1, d_head).unbind(0)  # one query vector, one key vector: (1, 1, 1, d)
positions = torch.arange(48)[None]  # (1, 48)
cos, sin = rope(positions)  # (1, 1, 48, d) each
q_at = apply_rotary(q.expand(1, 1, 48, d_head), cos, sin)  # the query placed at every position
k_at = apply_rotary(k.expand(1, 1, 48, d_head), cos, sin)
scores = (q_at @ k_at.transpose(-2, -1))[0, 0]  # (48, 48): query at m, key at n
offset_only = all(torch.allclose(scores.diagonal(s)[0], scores.diagonal(s), atol=1e-4) for s in range(-47, 48))
print(f"every diagonal constant (score depends on m - n only): {offset_only}")

pair = torch.tensor([1.0, 0.0])  # the first feature pair of a vector: its fastest-turning plane
angles = positions[0, :8] * rope.inv_freq[0]
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for m, a in enumerate(angles):
    x, y = pair[0] * torch.cos(a) - pair[1] * torch.sin(a), pair[1] * torch.cos(a) + pair[0] * torch.sin(a)
    axes[0].arrow(0, 0, float(x), float(y), head_width=0.04, color=plt.cm.viridis(m / 8))
    axes[0].annotate(f"m={m}", (float(x) * 1.12, float(y) * 1.12), ha="center", fontsize=8)
axes[0].set(xlim=(-1.3, 1.3), ylim=(-1.3, 1.3), aspect="equal", title="one feature pair, turned by m·θ₀")
axes[1].imshow(scores, cmap="RdBu")
axes[1].set(title="q at m · k at n, both rotated", xlabel="key position n", ylabel="query position m")
save(fig, "rope")

# %% [markdown]
# **ALiBi** adds nothing to the tokens either and learns nothing. Each head subtracts
# `slope × distance` from every score, with slopes 1/2, 1/4, …, 1/256 for 8 heads (a geometric
# sequence; other head counts interpolate). Steep heads look at their neighbours, shallow heads
# far back. A key twice as far away always loses twice as much, however long the text, and
# that is what lets ALiBi read longer texts than it was trained on.

# %%
n_heads = 8
print("slopes:", [f"1/{round(1 / s)}" for s in alibi_slopes(n_heads).tolist()])
bias = ALiBi(n_heads)(torch.arange(24)[None], torch.arange(24)[None])[0]  # (h, Tq, Tk)
causal = torch.ones(24, 24, dtype=torch.bool).tril()
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
for ax, h in zip(axes, (0, 3, 7), strict=True):
    ax.imshow(bias[h].masked_fill(~causal, float("nan")), cmap="magma")
    ax.set(title=f"head {h}: slope {alibi_slopes(n_heads)[h]:.4f}", xlabel="key", ylabel="query")
save(fig, "alibi")

# %% [markdown]
# ## 3. Four GPTs, one experiment
#
# Same data, same seed, same batches, same size (2 layers, 4 heads, 64 wide, characters of the
# embedded Shakespeare, context 64); only `position` differs. RoPE and ALiBi have no position
# parameters at all; learned has 64 × 64 = 4,096 more.

# %%
from minitransformer.data import load_corpus
from minitransformer.tokenizers import CharTokenizer

text = load_corpus("shakespeare")[: 60_000 if FAST else None]
tok = CharTokenizer.train(text)
data = torch.tensor(tok.encode(text), dtype=torch.long)
split = int(0.9 * len(data))
train_data, val_data = data[:split], data[split:]
block, batch_size = 64, 32
steps = 8 if FAST else 600
SCHEMES = ("learned", "sinusoidal", "rope", "alibi")

models, times = {}, {}
for position in SCHEMES:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)  # the same batches for every scheme
    config = mt.GPTConfig(vocab_size=tok.vocab_size, max_seq_len=block, d_model=64, n_layers=2, n_heads=4,
                          dropout=0.0, position=position)
    model = mt.GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    start = time.perf_counter()
    for _ in range(steps):
        starts = torch.randint(0, len(train_data) - block, (batch_size,), generator=gen)
        batch = torch.stack([train_data[s:s + block] for s in starts])  # (B, T)
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    times[position] = time.perf_counter() - start
    models[position] = model.eval()
    print(f"{position:10s} {mt.count_parameters(model):,} parameters, {steps} steps in {times[position]:.1f} s, "
          f"last training loss {loss.item():.3f}")

# %% [markdown]
# ## 4. Reading past the training length
#
# Now each model reads validation windows of 256 characters, four times its training context.
# A model with `max_seq_len=64` refuses longer input, so we build each one again with
# `max_seq_len=256` and give it the same weights: that works for sinusoidal, RoPE and ALiBi,
# whose weights do not depend on the length, and not for the learned table, which has no rows
# for positions 64 to 255 (`load_state_dict` would refuse the shapes). We plot the loss at each
# position, averaged over the windows.
#
# The command line does the same: `minitransformer pretrain gpt --position alibi --seq-len 64`,
# then `minitransformer eval --run runs/<that run> --seq-len 256`.

# %%
long_block = 4 * block
n_windows = 8 if FAST else 64
gen = torch.Generator().manual_seed(1)
starts = torch.randint(0, len(val_data) - long_block, (n_windows,), generator=gen)
windows = torch.stack([val_data[s:s + long_block] for s in starts])  # (N, 256)


def loss_by_position(model: mt.GPT, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the prediction made at each position: (T - 1,)."""
    with torch.no_grad():
        logits = model(tokens).logits  # (N, T, V)
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")  # (N, T - 1)
    return losses.mean(0)


curves = {}
for position, model in models.items():
    if position == "learned":
        curves[position] = loss_by_position(model, windows[:, :block])  # it can read 64 characters, no more
        continue
    longer = mt.GPT(dataclasses.replace(model.config, max_seq_len=long_block)).eval()
    longer.load_state_dict(model.state_dict())  # the same weights: none of them depends on the length
    curves[position] = loss_by_position(longer, windows)

fig, ax = plt.subplots(figsize=(8, 4))
smooth = 8  # average over 8 positions, for a readable line
for position, curve in curves.items():
    n = len(curve) // smooth * smooth
    ax.plot(torch.arange(n).view(-1, smooth).float().mean(1), curve[:n].view(-1, smooth).mean(1), label=position)
ax.axvline(block, ls="--", c="gray")
ax.text(block + 2, ax.get_ylim()[1] * 0.97, "trained up to here", va="top", color="gray")
ax.set(xlabel="position in the window", ylabel="loss (nats per character)",
       title="Trained on 64 characters, read on 256")
ax.legend()
save(fig, "extrapolation")

print(f"{'scheme':10s} {'loss 0-63':>10s} {'64-127':>8s} {'128-191':>8s} {'192-255':>8s}")
for position, curve in curves.items():
    parts = [curve[a:b].mean().item() for a, b in ((0, 63), (63, 127), (127, 191), (191, 255)) if b <= len(curve) + 1]
    print(f"{position:10s} " + " ".join(f"{p:8.3f}" for p in parts))

# %% [markdown]
# ## What to take away
#
# What we measured on a 2-core CPU (600 steps, full mode; your numbers will differ a little):
#
# | scheme | loss 0–63 | 64–127 | 128–191 | 192–255 |
# |---|---|---|---|---|
# | learned | 2.08 | (cannot read) | | |
# | sinusoidal | 2.18 | 3.40 | 3.58 | 3.30 |
# | RoPE | 1.97 | 2.18 | 2.74 | 3.17 |
# | ALiBi | 2.08 | 2.11 | 2.18 | 2.13 |
#
# - **Within the training length** all four learn; RoPE is a little ahead here (Su et al. 2021
#   report faster pre-training too), and the fixed sinusoids a little behind.
# - **Past it**, only ALiBi holds its loss: its penalty is the same rule at every distance. RoPE
#   meets angles it never saw and degrades step by step; that is why long-context LLaMA variants
#   rescale RoPE's angles (position interpolation, NTK scaling) before fine-tuning on longer text.
#   Sinusoids fail at once: the layers learned to read the sums of the first 64 vectors only.
# - **The learned table** cannot even be asked.
# - **Cost**: RoPE turns q and k in every layer, ALiBi adds a (heads, T, T) bias to the scores.
#   `python benchmarks/bench_positions.py all --threads 2` times training steps against the learned
#   table: ALiBi and sinusoids cost nothing measurable, RoPE about 9% at nanoGPT's tiny CPU shape
#   (many small operations) and 2% at 6 layers × 384 wide. A RoPE GPT trains as fast as
#   transformers' GPT-NeoX with the same weights (0.99–1.01×).
#
# Real models mix these settings: `mt.GPTConfig.preset("pythia-70m")` is Pythia's shape (GPT-NeoX's):
# RoPE on only the first quarter of each head (`rotary_fraction=0.25`) and attention and feed-forward
# side by side in each layer (`parallel_residual=True`); `mt.from_hf` converts such a model both ways.
#
# Try it: train longer (`steps = 2000`), widen the model, or change RoPE's base
# (`mt.GPTConfig(position="rope", rope_base=500.0)`: faster turns) and see what moves.
