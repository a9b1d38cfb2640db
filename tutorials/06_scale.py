# %% [markdown]
# # 06 · From tiny to famous: parameters, memory, compute
#
# The models we trained in tutorials 03 and 05 have a hundred thousand parameters or so (04 ran the
# 22.7M-parameter MiniLM someone else trained). The famous ones are the
# *same code* with bigger numbers in the config. In this tutorial we
#
# 1. count the parameters of BERT-Large, RoBERTa-Large, ELECTRA-Large, GPT-2, GPT-3 175B and T5-11B
#    exactly, without allocating them (PyTorch's *meta* device), and compare with the papers;
# 2. see where those parameters live (embeddings, attention, feed-forward, norms, heads);
# 3. check the rule of thumb "12·L·d² per decoder stack" across the GPT-3 family;
# 4. estimate the memory to run and to train each model, and GPT-3's training compute.
#
# Papers: Devlin et al. 2019 §3 (BERT-Large: 340M), Liu et al. 2019 (RoBERTa), Clark et al. 2020
# (ELECTRA), Radford et al. 2019 Table 2 (GPT-2), Brown et al. 2020 Table 2.1 (the GPT-3 family),
# Raffel et al. 2020 §3.7 (T5-11B), Kaplan et al. 2020 §2.1 (6·N FLOPs per token), Korthikanti et al.
# 2022 (activation memory), Micikevicius et al. 2018 (mixed-precision training).
#
# Run: `python tutorials/06_scale.py` (a few seconds), or cell by cell.
# `MT_TUTORIAL_FAST=1` runs it in seconds; `MT_TUTORIAL_OUTPUT=folder` puts the plots elsewhere
# (both read by `minitransformer/tutorial.py`).

# %%
# ruff: noqa: E402  (a notebook: each cell imports what it first needs)
import time

import matplotlib.pyplot as plt
import torch

import minitransformer as mt
from minitransformer.accounting import analytic_parameter_count, build_model
from minitransformer.tutorial import figure_saver

save = figure_saver("06", globals().get("__file__"))  # save(fig, name) -> _output/06_<name>.png


# %% [markdown]
# ## 1. The reference table, counted exactly
#
# `mt.count_parameters(config)` builds the real module on the **meta device**: every tensor has a
# shape and a dtype but no storage, so GPT-3's 175 billion parameters cost no memory and take a
# fraction of a second. It counts exactly what the code would allocate (a tied matrix once).
# `analytic_parameter_count` adds up closed-form formulas instead; the two must agree.
#
# The "paper" column is what the authors reported, and the authors rounded or counted differently:
# GPT-2's "117M" model as released has 124M parameters and its "1542M" one 1,558M; BERT-Large comes
# to 336M even with its pre-training heads (pooler, MLM transform, NSP) against the paper's "340M".

# %%
REFERENCE = {  # name: (config, the number reported in the paper or release)
    "BERT-Large": (mt.BertConfig.preset("bert-large"), 340e6),
    "RoBERTa-Large": (mt.BertConfig.preset("roberta-large"), 355e6),
    "ELECTRA-Large": (mt.BertConfig.preset("electra-large"), 335e6),
    "GPT-2 117M": (mt.GPTConfig.preset("gpt2-117m"), 117e6),
    "GPT-2 1.5B": (mt.GPTConfig.preset("gpt2-1.5b"), 1542e6),
    "GPT-3 175B": (mt.GPTConfig.preset("gpt3-175b"), 175.0e9),
    "T5-11B": (mt.T5Config.preset("t5-11b"), 11e9),
}


def human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


counts = {}
print(f"{'model':14s} {'exact count':>18s} {'paper':>7s}   seconds on meta")
for name, (cfg, reported) in REFERENCE.items():
    start = time.perf_counter()
    counts[name] = mt.count_parameters(cfg)
    elapsed = time.perf_counter() - start
    assert counts[name] == analytic_parameter_count(cfg), name
    print(f"{name:14s} {counts[name]:18,d} {human(reported):>7s}   {elapsed:.2f}")
assert counts["BERT-Large"] < 340e6  # the text below: 336M with its heads, under the paper's 340M

# %% [markdown]
# ## 2. Where do the parameters live?
#
# We walk over every parameter of each (meta) model and put it in one of six groups by its name.
# Small models spend a large share on the embedding table (V × d grows only linearly in d); big
# ones are almost all attention and feed-forward (≈ 4·d² + 8·d² per layer, growing with d²).
# T5-11B is the odd one out: its 128 heads of 128 dimensions make the attention 16 × d_model wide,
# and its decoder layers add cross-attention, so 43% of it is attention despite d_ff = 65,536 —
# the largest attention share of the big models here.

# %%
GROUPS = ["embeddings", "attention", "feed-forward", "norms", "position bias", "heads"]


def group_of(parameter_name: str) -> str:
    """The group of a parameter, from its name in our modules."""
    if "norm" in parameter_name:
        return "norms"
    if parameter_name.startswith(("tok_emb", "pos_emb", "embeddings", "embed_proj", "shared")):
        return "embeddings"
    if "rel_bias" in parameter_name:
        return "position bias"
    if "attn" in parameter_name:
        return "attention"
    if ".ffn." in parameter_name:
        return "feed-forward"
    return "heads"  # pooler, MLM / NSP / discriminator heads, an untied LM head


shares = {}
for name, (cfg, _) in REFERENCE.items():
    with torch.device("meta"):  # shapes only: nothing is allocated
        model = build_model(cfg)
    sizes = dict.fromkeys(GROUPS, 0)
    for pname, p in model.named_parameters():  # a tied matrix appears once
        sizes[group_of(pname)] += p.numel()
    assert sum(sizes.values()) == counts[name]
    shares[name] = {g: n / counts[name] for g, n in sizes.items()}
    print(f"{name:14s} " + "  ".join(f"{g} {shares[name][g]:5.1%}" for g in GROUPS if sizes[g]))
# what the text above says, checked: T5-11B spends the largest share on attention
assert max(shares, key=lambda n: shares[n]["attention"]) == "T5-11B"

fig, ax = plt.subplots(figsize=(8, 3.8))
left = [0.0] * len(shares)
for group in GROUPS:
    values = [shares[name][group] for name in shares]
    ax.barh(list(shares), values, left=left, label=group)
    left = [a + b for a, b in zip(left, values, strict=True)]
ax.invert_yaxis()
ax.set_xlabel("share of the parameters")
ax.set_title("Where the parameters live")
ax.legend(ncol=3, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, -0.45))
save(fig, "where_parameters_live")

# %% [markdown]
# ## 3. The 12·L·d² rule across the GPT-3 family
#
# Brown et al. 2020 (Table 2.1) trained eight sizes, all with a 2,048-token context and GPT-2's
# 50,257-token vocabulary. A decoder layer has about 12·d² weights, so a model has about
# 12·L·d² + V·d parameters. (The number of heads does not change the count. Two rows of the table
# do not add up: XL lists 24 heads of 128 for d_model = 2048, and 13B lists d_model = 5140, which its
# 40 heads of 128 do not divide; we use 16 × 128 = 2048 and 40 × 128 = 5120.)

# %%
GPT3_FAMILY = {  # name: (n_layers, d_model, n_heads)
    "Small": (12, 768, 12), "Medium": (24, 1024, 16), "Large": (24, 1536, 16), "XL": (24, 2048, 16),
    "2.7B": (32, 2560, 32), "6.7B": (32, 4096, 32), "13B": (40, 5120, 40), "175B": (96, 12288, 96),
}
rule, exact = [], []
for name, (n_layers, d_model, n_heads) in GPT3_FAMILY.items():
    cfg = mt.GPTConfig(vocab_size=50257, max_seq_len=2048, d_model=d_model, n_layers=n_layers, n_heads=n_heads)
    exact.append(analytic_parameter_count(cfg))
    rule.append(12 * n_layers * d_model**2 + cfg.vocab_size * d_model)
    print(f"GPT-3 {name:6s}: {human(exact[-1]):>6s} exact, 12·L·d² + V·d = {human(rule[-1]):>6s} "
          f"({rule[-1] / exact[-1]:.4f} of it)")

fig, ax = plt.subplots(figsize=(5.5, 4))
ax.loglog(rule, exact, "o")
ax.loglog([min(rule), max(rule)], [min(rule), max(rule)], "--", c="gray", label="y = x")
for name, x, y in zip(GPT3_FAMILY, rule, exact, strict=True):
    ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, -10), fontsize=8)
ax.set_xlabel("12·L·d² + V·d")
ax.set_ylabel("exact parameter count")
ax.set_title("GPT-3 family: the rule of thumb holds")
ax.legend()
save(fig, "gpt3_family")

# %% [markdown]
# ## 4. Memory and compute
#
# `mt.estimate_memory` adds up what a forward pass (inference) or a training step needs:
#
# - **weights**: N × bytes per value (2 in bfloat16);
# - **gradients** (training): one per weight;
# - **optimizer** (training): AdamW keeps two float32 moments per weight (8 bytes), and mixed
#   precision a float32 master copy too (4 more): 16-bit training costs ~16 bytes per parameter
#   before a single activation is stored;
# - **activations**: what the backward pass needs per layer (Korthikanti et al. 2022), or at
#   inference the largest temporary tensors;
# - **KV cache** (decoders at inference): keys and values of every layer for every position.
#
# The dashed line is one 80 GB accelerator.

# %%
memory = {}
for name, (cfg, _) in REFERENCE.items():
    seq = min(getattr(cfg, "max_seq_len", 512), 2048)
    inference = mt.estimate_memory(cfg, batch_size=1, seq_len=seq, dtype="bfloat16", training=False)
    training = mt.estimate_memory(cfg, batch_size=1, seq_len=seq, dtype="bfloat16", training=True)
    memory[name] = (inference, training)
    print(f"{name:14s} seq {seq:4d}: inference {inference.total / 1e9:8.1f} GB "
          f"(weights {inference.weights / 1e9:7.1f}, KV cache {inference.kv_cache / 1e9:5.2f});  "
          f"training {training.total / 1e9:8.1f} GB = {training.total / 80e9:5.1f} x 80 GB")

fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
parts = ["weights", "gradients", "optimizer", "activations", "kv_cache"]
for ax, (title, which) in zip(axes, (("inference, batch 1, bfloat16", 0), ("training step, batch 1, bfloat16", 1)), strict=True):
    bottom = [0.0] * len(memory)
    for part in parts:
        values = [getattr(memory[name][which], part) / 1e9 for name in memory]
        ax.bar(list(memory), values, bottom=bottom, label=part)
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    ax.axhline(80, ls="--", c="gray")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=45)
axes[0].set_ylim(bottom=0.05)  # below the smallest weights (GPT-2 117M: 0.25 GB): every bar shows whole
axes[0].set_ylabel("GB (log scale)")
axes[1].legend(fontsize=8)
save(fig, "memory")

# %% [markdown]
# **Training compute.** A training step costs about 6 FLOPs per parameter per token (2 for the
# forward multiply-add, 4 for the backward pass; Kaplan et al. 2020 §2.1), plus attention's own
# share (`minitransformer.flops`). GPT-3 175B was trained on 300 billion tokens.

# %%
from minitransformer.flops import gpt_flops_per_token

gpt3 = REFERENCE["GPT-3 175B"][0]
per_token = gpt_flops_per_token(gpt3, seq_len=2048)
total = per_token * 300e9
n_matmul = counts["GPT-3 175B"] - gpt3.max_seq_len * gpt3.d_model  # the position table is a lookup, no arithmetic
print(f"GPT-3 175B: {per_token:.3e} FLOPs per training token x 300e9 tokens = {total:.2e} FLOPs")
print(f"6·N·D alone: {6 * n_matmul * 300e9:.2e}, the figure Brown et al. 2020 report (Appendix D); "
      f"the rest is attention's own QKᵀ and weights·V")
print(f"on an accelerator with a round 1e15 FLOP/s peak, used at 40%: {total / (0.4 * 1e15) / 86400 / 365:.0f} years; "
      f"on 1,000 of them: {total / (0.4 * 1e15 * 1000) / 86400:.0f} days")

# %% [markdown]
# ## What to remember
#
# - Size is configuration: the same `GPT` class is 0.1M or 175B parameters.
# - Count on the meta device: exact, instant, no memory.
# - Per layer ≈ 12·d²; embeddings matter for small models only.
# - Training needs ~16 bytes per parameter before activations (bfloat16 weights and gradients,
#   float32 Adam moments and master weights): GPT-3 needs dozens of accelerators just to hold its
#   training state.
#
# That is the end of the tutorial series. The exercises (`minitransformer exercises list`) let you
# write the key pieces yourself and check them against the library.
