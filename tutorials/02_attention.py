# %% [markdown]
# # 02 · Attention: how tokens look at each other
#
# Attention is the one operation that mixes information *between* positions of a sequence; every
# other part of a Transformer works on each position alone. Vaswani et al. 2017 define it in §3.2.1:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V$$
#
# Read it as a *soft dictionary lookup*: each position asks a question (its query q), every
# position offers a label (its key k) and a content (its value v). The query is compared with all
# keys by dot products, the scores become weights that sum to 1, and the answer is the weighted
# average of the values.
#
# In this tutorial we compute attention by hand, check it against `minitransformer.nn.attention`
# (both of its backends), see why the scores are divided by √d, draw the causal and padding masks,
# and look at the weights of a multi-head attention layer.
#
# Run: `python tutorials/02_attention.py` (plots in `tutorials/_output/`), or cell by cell.
# `MT_TUTORIAL_FAST=1` runs it in seconds; `MT_TUTORIAL_OUTPUT=folder` puts the plots elsewhere
# (both read by `minitransformer/tutorial.py`).

# %%
# ruff: noqa: E402  (a notebook: each cell imports what it first needs)
import math

import matplotlib.pyplot as plt
import torch

from minitransformer.tutorial import figure_saver

save = figure_saver("02", globals().get("__file__"))  # save(fig, name) -> _output/02_<name>.png
torch.manual_seed(0)


def heatmap(ax, matrix, title, xlabels=None, ylabels=None, cmap="viridis", colorbar=True):
    """Draw a (rows, cols) matrix, rows are queries and columns keys (with a colour bar for weights)."""
    im = ax.imshow(matrix, cmap=cmap, vmin=0)
    ax.set_title(title, fontsize=9)
    if xlabels is not None:
        ax.set_xticks(range(len(xlabels)), xlabels, rotation=90, fontsize=7)
    if ylabels is not None:
        ax.set_yticks(range(len(ylabels)), ylabels, fontsize=7)
    ax.set_xlabel("key position", fontsize=8)
    ax.set_ylabel("query position", fontsize=8)
    if colorbar:
        plt.colorbar(im, ax=ax, fraction=0.046)


# %% [markdown]
# ## 1. A soft lookup, by hand
#
# Four keys, four values, one query that resembles the third key. The weights show where the query
# "looks"; the output is mostly the third value.

# %%
keys = torch.tensor([[1.0, 0.0, 0.0, 0.0],
                     [0.0, 1.0, 0.0, 0.0],
                     [0.0, 0.0, 1.0, 0.0],
                     [0.0, 0.0, 0.0, 1.0]]) * 3  # (Tk=4, d=4)
values = torch.tensor([[10.0], [20.0], [30.0], [40.0]])  # (Tk=4, d_v=1)
query = torch.tensor([[0.2, 0.1, 2.5, 0.3]])  # (Tq=1, d=4): close to key 2

scores = query @ keys.T / math.sqrt(keys.shape[-1])  # (1, 4): one score per key
weights = torch.softmax(scores, dim=-1)  # (1, 4), sums to 1
print("scores :", [f"{s:.2f}" for s in scores[0].tolist()])
print("weights:", [f"{w:.3f}" for w in weights[0].tolist()])
print(f"output : {(weights @ values).item():.2f} (mostly the third value, 30)")

# %% [markdown]
# ## 2. The general case, and the library
#
# With a batch B and h heads, queries are (B, h, Tq, d), keys (B, h, Tk, d), values (B, h, Tk, d_v).
# `minitransformer.nn.attention` has two backends: `"manual"` writes the formula out (and can return
# the weights), `"sdpa"` calls PyTorch's fused `scaled_dot_product_attention`. All three must agree.

# %%
from minitransformer.nn import attention, causal_mask, padding_bias

B, h, T, d = 2, 3, 5, 8
q, k, v = torch.randn(B, h, T, d), torch.randn(B, h, T, d), torch.randn(B, h, T, d)

by_hand = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1) @ v  # (B, h, T, d)
manual, w = attention(q, k, v, backend="manual", need_weights=True)
fused, _ = attention(q, k, v, backend="sdpa")
assert torch.allclose(manual, by_hand, atol=1e-6), "the manual backend is the formula"
assert torch.allclose(fused, by_hand, atol=1e-5), "the fused kernel computes the same thing"
print("by hand == manual backend == sdpa backend; weights", tuple(w.shape), "rows sum to", w.sum(-1).mean().item())

# %% [markdown]
# ## 3. Why divide by √d?
#
# If the entries of q and k are independent with mean 0 and variance 1, their dot product is a
# sum of d such products: its variance is d (§3.2.1, footnote 4). Large scores push the softmax
# into a corner where one weight is ~1 and the gradients of the others vanish. Dividing by √d
# brings the variance back to 1 whatever the head size. Below: the spread of the scores and the
# entropy of the attention weights (high = spread out, 0 = one-hot), with and without the scale.

# %%
dims = [4, 16, 64, 256, 1024]
n_keys = 32
std_raw, std_scaled, ent_raw, ent_scaled = [], [], [], []
for dim in dims:
    qq, kk = torch.randn(256, 1, dim), torch.randn(256, n_keys, dim)
    raw = (qq @ kk.transpose(-2, -1)).squeeze(1)  # (256, n_keys)
    for scores_, stds, ents in ((raw, std_raw, ent_raw), (raw / math.sqrt(dim), std_scaled, ent_scaled)):
        p = torch.softmax(scores_, dim=-1)
        stds.append(scores_.std().item())
        ents.append(-(p * p.clamp_min(1e-12).log()).sum(-1).mean().item())

fig, axes = plt.subplots(1, 2, figsize=(9, 3.3))
axes[0].plot(dims, std_raw, "o-", label="q·k")
axes[0].plot(dims, std_scaled, "o-", label="q·k / √d")
axes[0].set_xscale("log")
axes[0].set_yscale("log")
axes[0].set_xlabel("head size d")
axes[0].set_title("spread (std) of the scores")
axes[0].legend()
axes[1].plot(dims, ent_raw, "o-", label="q·k")
axes[1].plot(dims, ent_scaled, "o-", label="q·k / √d")
axes[1].axhline(math.log(n_keys), ls="--", c="gray", label=f"uniform over {n_keys} keys")
axes[1].set_xscale("log")
axes[1].set_xlabel("head size d")
axes[1].set_title("entropy of the attention weights")
axes[1].legend(fontsize=8)
save(fig, "why_scale")

# %% [markdown]
# ## 4. Masks: who may look at whom
#
# **Causal mask.** A language model predicts token t+1 from tokens 0..t, so position i must not see
# positions after i (Vaswani et al. §3.2.3: information must not flow from later tokens to earlier
# ones). Masked scores are set to a huge negative number before the softmax; their weights become
# exactly 0.
#
# **With a KV cache** (tutorial 03) we feed only the newest Tq tokens as queries while the keys
# cover all Tk positions so far. Query i is then at absolute position Tk − Tq + i: the mask is the
# bottom-right corner of the full one.
#
# **Padding.** A batch pads short sequences to a common length; a padding bias (0 for real keys, a
# very negative number for padded keys) makes sure no real token attends to padding.

# %%
tokens = ["To", "be", ",", "or", "not", "to", "be", ":"]
padded = tokens[:5] + ["<pad>"] * 3  # a shorter sequence padded to the same length
full = causal_mask(8, 8)  # (8, 8) bool
cached = causal_mask(3, 8)  # the last 3 queries over 8 keys
lengths = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])  # second sequence: 5 real tokens, 3 padding
bias = padding_bias(lengths)  # (2, 1, 1, 8)

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
heatmap(axes[0], full.int(), "causal mask (8 queries, 8 keys); green = allowed", tokens, tokens,
        cmap="Greens", colorbar=False)
heatmap(axes[1], cached.int(), "causal, KV cache: 3 new queries, 8 keys", tokens, tokens[-3:],
        cmap="Greens", colorbar=False)
heatmap(axes[2], (bias[:, 0, 0, :] == 0).int(), "padding: keys allowed (seq 1: 5 tokens + 3 pad)",
        [str(k) for k in range(8)], ["seq 0", "seq 1"], cmap="Greens", colorbar=False)
axes[2].set_ylabel("sequence in the batch", fontsize=8)
save(fig, "masks")

# %% [markdown]
# Masks combine by adding biases. Here one sequence with 3 padded positions, causal *and* padding:
# each real token sees itself and the real tokens before it. (Rows of padded queries are thrown
# away later.)

# %%
T = 8
x = torch.randn(1, 1, T, 16)
pad_bias = padding_bias(torch.tensor([[1] * 5 + [0] * 3]))  # (1, 1, 1, T)
out, weights = attention(x, x, x, attn_bias=pad_bias, is_causal=True, backend="manual", need_weights=True)
print("weights of query 4 (the last real token):", [f"{w:.3f}" for w in weights[0, 0, 4].tolist()])
assert torch.all(weights[0, 0, :5, 5:] == 0), "real tokens never attend to padding"

fig, ax = plt.subplots(figsize=(4.5, 3.8))
heatmap(ax, weights[0, 0], "weights with causal + padding masks", padded, padded)
save(fig, "combined_mask_weights")

# %% [markdown]
# *Try it yourself:* `minitransformer exercises start 2` (attention with a mask) and
# `minitransformer exercises start 3` (the causal mask with a KV cache, and the padding bias).
#
# ## 5. Multi-head attention
#
# One attention is one way of comparing positions. Multi-head attention (§3.2.2) runs h of them in
# parallel on h slices of size d_model/h: Q, K and V come from learned linear maps of the input
# (`qkv`, one matrix for all three), each head attends on its own, and the heads' outputs are
# concatenated and mixed by an output map (`out`). Different heads can learn different relations
# (the previous word, the subject of the verb, ...).
#
# Our layer is untrained, so its patterns are random; tutorial 04 shows the heads of a real,
# trained BERT. What is already visible: the causal structure, and that the heads differ.

# %%
from minitransformer.nn import MultiHeadAttention

d_model, n_heads = 32, 4
words = "the king is dead , long live the king".split()
vocab = {w: i for i, w in enumerate(sorted(set(words)))}
embed = torch.nn.Embedding(len(vocab), d_model)
x = embed(torch.tensor([[vocab[w] for w in words]]))  # (1, T, d_model)

mha = MultiHeadAttention(d_model, n_heads, backend="manual")
with torch.no_grad():
    y, weights = mha(x, is_causal=True, need_weights=True)  # y (1, T, d_model), weights (1, h, T, T)
    fused_mha = MultiHeadAttention(d_model, n_heads, backend="sdpa")
    fused_mha.load_state_dict(mha.state_dict())
    assert torch.allclose(fused_mha(x, is_causal=True)[0], y, atol=1e-5), "both backends agree"
print(f"input {tuple(x.shape)} -> output {tuple(y.shape)}; weights {tuple(weights.shape)}; "
      f"parameters: {sum(p.numel() for p in mha.parameters()):,} (4 · d_model² + biases)")

fig, axes = plt.subplots(1, n_heads, figsize=(4 * n_heads, 3.6))
for head in range(n_heads):
    heatmap(axes[head], weights[0, head], f"head {head}", words, words)
save(fig, "heads")

# %% [markdown]
# ## 6. Dropout: switching random weights off while training
#
# During training every family drops a random 10% of some activations (Srivastava et al. 2014),
# including the attention weights: a query then cannot lean on one single key, which regularises.
# Survivors are scaled by 1/(1-p) so the expected value stays the same, and in `eval()` mode
# dropout does nothing. `minitransformer.nn.dropout` writes it out in one line:
# `x * ((u >= p) / (1 - p))` with `u` uniform in [0, 1).
#
# Below, the attention weights of one query with p = 0.5: each weight is either 0 or doubled, so a
# row no longer sums to 1, but its average over many draws is the original row.

# %%
from minitransformer.nn import dropout

torch.manual_seed(0)
row = weights[0, 0, -1]  # the last query's weights in head 0 (it sees every word)
draws = torch.stack([dropout(row, p=0.5) for _ in range(2000)])  # (2000, T)
print("one draw:", [round(v, 2) for v in draws[0].tolist()])
print("max |mean of draws - weights| =", f"{(draws.mean(0) - row).abs().max().item():.3f}")
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(range(len(words)), row.numpy(), alpha=0.5, label="weights (eval)")
ax.bar(range(len(words)), draws[0].numpy(), alpha=0.5, label="one training draw, p = 0.5")
ax.plot(range(len(words)), draws.mean(0).numpy(), "k.", label="mean of 2000 draws")
ax.set_xticks(range(len(words)), words)
ax.legend(fontsize=8)
save(fig, "dropout")

# %% [markdown]
# ## What to remember
#
# - Attention = softmax(QKᵀ/√d)V: a weighted average of values, weights from query–key similarity.
# - The √d keeps the scores' spread independent of the head size, so the softmax does not saturate.
# - Masks are additive biases on the scores: causal (decoders), padding (batches), and in T5 a
#   learned position bias (tutorial 05) all go through the same door.
# - Dropout zeroes a random fraction p while training and scales the rest by 1/(1-p); it is the
#   identity in `eval()` mode.
# - `need_weights=True` uses the manual formula to return weights for plots; training uses the
#   fused `sdpa` kernel, which gives the same output.
#
# Next: `03_gpt.py` stacks attention and feed-forward layers into a language model.
