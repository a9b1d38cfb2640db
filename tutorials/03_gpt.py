# %% [markdown]
# # 03 · GPT: a language model from the shared blocks
#
# BERT, GPT and T5 look like three different inventions. They are one set of parts arranged three
# ways: token embeddings, a position scheme, a stack of layers (attention + feed-forward, each with
# a residual connection and a norm), and a head. In this tutorial we
#
# 1. compare the three families part by part;
# 2. build GPT ourselves from `minitransformer.nn` blocks and check it against `mt.GPT`;
# 3. count its parameters, by formula and by the library;
# 4. train a tiny character-level GPT on Shakespeare and plot the loss;
# 5. sample from it with temperature, top-k and top-p;
# 6. measure what the KV cache saves when generating.
#
# Papers: Radford et al. 2018 (GPT, §3.1: a left-to-right Transformer decoder trained to predict the
# next token), Radford et al. 2019 (GPT-2, §2.3: pre-LN, the 1/√N initialisation of residual layers),
# Brown et al. 2020 (GPT-3, §2.1: the same shape, scaled up), Vaswani et al. 2017 §3.1 (the layers),
# Holtzman et al. 2020 §3.1 (nucleus sampling), Fan et al. 2018 (top-k sampling).
#
# Run: `python tutorials/03_gpt.py` (about a minute on a 2-core CPU), or cell by cell.
# `MT_TUTORIAL_FAST=1` runs it in seconds; `MT_TUTORIAL_OUTPUT=folder` puts the plots elsewhere
# (both read by `minitransformer/tutorial.py`).

# %%
# ruff: noqa: E402  (a notebook: each cell imports what it first needs)
import time

import matplotlib.pyplot as plt
import torch
from torch import nn

import minitransformer as mt
from minitransformer.tutorial import FAST, figure_saver

save = figure_saver("03", globals().get("__file__"))  # save(fig, name) -> _output/03_<name>.png
torch.manual_seed(0)


# %% [markdown]
# ## 1. Three families, one set of parts
#
# What differs between the families is configuration, not code. The table is read off the three
# models built from their "tiny" presets.

# %%
families = {
    "GPT": mt.GPT(mt.GPTConfig.preset("tiny")),
    "BERT": mt.Bert(mt.BertConfig.preset("tiny")),
    "T5": mt.T5(mt.T5Config.preset("tiny")),
}


def describe(name: str, model: nn.Module) -> dict[str, str]:
    layer = model.encoder_layers[0] if name == "T5" else model.layers[0]
    return {
        "layers": f"{type(layer).__name__}" + (" + DecoderLayer(cross-attn)" if name == "T5" else ""),
        "norm order": "pre-LN" if layer.pre_norm else "post-LN",
        "norm": type(layer.self_attn_norm).__name__,
        "positions": {"GPT": "learned absolute", "BERT": "learned absolute + segments",
                      "T5": "relative bias in attention"}[name],
        "attention": {"GPT": "causal", "BERT": "bidirectional", "T5": "bidirectional enc. / causal dec."}[name],
        "head": {"GPT": "LM head (tied)", "BERT": "MLM head (tied) + NSP", "T5": "LM head (tied, v1.0)"}[name],
    }


rows = {name: describe(name, model) for name, model in families.items()}
for key in rows["GPT"]:
    print(f"{key:11s}" + "".join(f"| {rows[name][key]:34s}" for name in rows))

# %% [markdown]
# ## 2. GPT, built by hand
#
# GPT-2 (Radford et al. 2019 §2.3) in six lines of `forward`:
# token embedding + position embedding → n_layers decoder layers (pre-LN, causal self-attention, no
# cross-attention) → a final LayerNorm → the LM head, which *is* the token-embedding matrix used
# backwards (tied weights, Press & Wolf 2017): the score of token v is the dot product of the final
# hidden state with v's embedding. (`mt.GPT` computes the same scores; on a GPU it pads the
# vocabulary to a multiple of 8 with columns no softmax can choose, because GPT-2's 50,257-wide rows
# keep the GPU's fastest matrix kernels out: see `padded_vocab_logits` in `minitransformer.nn`.)

# %%
from minitransformer.nn import DecoderLayer, LayerNorm, LearnedPositionalEmbedding, TokenEmbedding


class HandmadeGPT(nn.Module):
    """GPT-2 from the shared blocks; attribute names match mt.GPT so its weights load here."""

    def __init__(self, cfg: mt.GPTConfig) -> None:
        super().__init__()
        self.tok_emb = TokenEmbedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = LearnedPositionalEmbedding(cfg.max_seq_len, cfg.d_model)
        self.layers = nn.ModuleList(
            DecoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, pre_norm=True, dropout=cfg.dropout,
                         activation=cfg.activation, norm_eps=cfg.norm_eps)
            for _ in range(cfg.n_layers))
        self.final_norm = LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied: one matrix reads tokens in and scores them out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> logits (B, T, V)
        positions = torch.arange(ids.shape[1]).unsqueeze(0)  # (1, T)
        x = self.tok_emb(ids) + self.pos_emb(positions)  # (B, T, C)
        for layer in self.layers:
            x, _ = layer(x)  # causal self-attention + feed-forward, each x = x + f(LN(x))
        return self.lm_head(self.final_norm(x))  # (B, T, V)


cfg = mt.GPTConfig.preset("tiny")
library_gpt = mt.GPT(cfg).eval()
handmade = HandmadeGPT(cfg).eval()
handmade.load_state_dict(library_gpt.state_dict())  # same names, same shapes
ids = torch.randint(0, cfg.vocab_size, (2, 10))
with torch.no_grad():
    assert torch.allclose(handmade(ids), library_gpt(ids).logits, atol=1e-6)
print("our hand-built GPT gives exactly mt.GPT's logits:", tuple(library_gpt(ids).logits.shape))

# %% [markdown]
# *Try it yourself:* `minitransformer exercises start 4` asks you to write the block itself
# (`x = x + Attn(LN1(x)); x = x + FFN(LN2(x))`), and its post-LN twin used by BERT.
#
# ## 3. Counting parameters
#
# Per layer: the attention's Q, K, V and output maps are 4·d² weights (+ 4d biases), the
# feed-forward d→4d→d is 8·d² (+ 5d), two LayerNorms 4d: about **12·d²** per layer. Add the token
# table V·d and the position table T·d (the LM head is tied, so it costs nothing).
# `mt.count_parameters(model)` sums the parameters of a module (a tied matrix once); given a
# *config* instead, it builds the model on PyTorch's meta device (shapes only, no memory), which is
# how tutorial 06 counts GPT-3.

# %%
d, L, V, T = cfg.d_model, cfg.n_layers, cfg.vocab_size, cfg.max_seq_len
per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d
by_hand = V * d + T * d + L * per_layer + 2 * d
print(f"by hand: {by_hand:,}   mt.count_parameters(model): {mt.count_parameters(library_gpt):,}   "
      f"(12·L·d² alone: {12 * L * d * d:,}; embeddings: {(V + T) * d:,})")
assert by_hand == mt.count_parameters(library_gpt)

# %% [markdown]
# ## 4. Training a tiny Shakespeare GPT
#
# The objective is next-token prediction: at every position t the model outputs a distribution
# over the vocabulary for token t+1, and the loss is the cross-entropy with the token that really
# came next. A sequence of T tokens gives T − 1 training signals at once (every position but the
# last has a next token to predict), thanks to the causal mask.
#
# We use characters as tokens (a few dozen symbols, as in nanoGPT's Shakespeare example), random
# windows of the text as batches, and AdamW. A few hundred steps take under a minute on a laptop CPU
# and go from random letters (loss ≈ ln V ≈ 4.3) to words, line breaks and speaker-like layout.

# %%
from minitransformer.data import load_corpus
from minitransformer.tokenizers import CharTokenizer

text = load_corpus("shakespeare")[: 50_000 if FAST else 400_000]
tok = CharTokenizer.train(text)
data = torch.tensor(tok.encode(text), dtype=torch.long)
split = int(0.9 * len(data))
train_data, val_data = data[:split], data[split:]

block, batch_size = 64, 32
steps = 8 if FAST else 600
eval_every = 4 if FAST else 50
gen = torch.Generator().manual_seed(0)


def get_batch(source: torch.Tensor) -> torch.Tensor:
    """batch_size random windows of block tokens: (B, T). The model shifts labels by one itself."""
    starts = torch.randint(0, len(source) - block, (batch_size,), generator=gen)
    return torch.stack([source[s:s + block] for s in starts])


model_cfg = mt.GPTConfig(vocab_size=tok.vocab_size, max_seq_len=block, d_model=64, n_layers=2, n_heads=4,
                         dropout=0.0)
model = mt.GPT(model_cfg)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
print(f"{mt.count_parameters(model):,} parameters, vocabulary {tok.vocab_size}, {steps} steps of "
      f"{batch_size}x{block} tokens")


@torch.no_grad()
def val_loss() -> float:
    model.eval()
    loss = sum(model(b, labels=b).loss.item() for b in (get_batch(val_data) for _ in range(4))) / 4
    model.train()
    return loss


history, val_history = [], []
start = time.perf_counter()
for step in range(1, steps + 1):
    batch = get_batch(train_data)
    loss = model(batch, labels=batch).loss  # labels = inputs: the shift by one happens inside
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    history.append(loss.item())
    if step % eval_every == 0 or step == steps:
        val_history.append((step, val_loss()))
        print(f"step {step:4d}  train {loss.item():.3f}  val {val_history[-1][1]:.3f}")
print(f"trained in {time.perf_counter() - start:.1f} s")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(range(1, steps + 1), history, alpha=0.6, label="train (per step)")
ax.plot(*zip(*val_history, strict=True), "o-", label="validation")
ax.axhline(torch.log(torch.tensor(float(tok.vocab_size))).item(), ls="--", c="gray", label="uniform guess")
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy (nats per character)")
ax.set_title("A 2-layer GPT learns Shakespeare's characters")
ax.legend()
save(fig, "loss_curve")

# %% [markdown]
# ## 5. Sampling: temperature, top-k, top-p
#
# Generation asks the model for the next-token distribution, picks one token, appends it, repeats.
# How we pick changes the text:
#
# - **greedy** takes the most likely token: safe but repetitive;
# - **temperature** τ divides the logits: τ < 1 sharpens the distribution, τ > 1 flattens it;
# - **top-k** samples among the k most likely tokens only (Fan et al. 2018);
# - **top-p** (nucleus) samples among the smallest set of tokens whose probabilities add up to p
#   (Holtzman et al. 2020 §3.1): few tokens when the model is sure, many when it is not.

# %%
from minitransformer.generation import filter_top_k, filter_top_p

prompt = "To be"
prompt_ids = torch.tensor([tok.encode(prompt)])
with torch.no_grad():
    logits = model(prompt_ids).logits[0, -1]  # (V,) scores for the character after the prompt

settings = {
    "τ = 0.5": torch.softmax(logits / 0.5, -1),
    "τ = 1": torch.softmax(logits, -1),
    "τ = 2": torch.softmax(logits / 2, -1),
    "top-k = 5": torch.softmax(filter_top_k(logits, 5), -1),
    "top-p = 0.8": torch.softmax(filter_top_p(logits, 0.8), -1),
}
order = torch.argsort(torch.softmax(logits, -1), descending=True)[:15]
labels = [{" ": "␣", "\n": "\\n"}.get(c, c) for c in (tok.decode([int(i)]) for i in order)]  # show blanks
fig, axes = plt.subplots(1, len(settings), figsize=(16, 3), sharey=True)
for ax, (name, probs) in zip(axes, settings.items(), strict=True):
    ax.bar(range(len(order)), probs[order].numpy())
    ax.set_xticks(range(len(order)), labels, fontsize=8)
    ax.set_title(f"{name}: {(probs > 0).sum().item()} tokens possible", fontsize=9)
axes[0].set_ylabel(f"P(next char | {prompt!r})")
save(fig, "sampling_distributions")

n_new = 20 if FAST else block - prompt_ids.shape[1]  # stay within the 64-character context
for name, kwargs in {"greedy": dict(do_sample=False), "τ = 0.8": dict(temperature=0.8),
                     "τ = 1.5": dict(temperature=1.5), "top-k = 5": dict(top_k=5),
                     "top-p = 0.9": dict(top_p=0.9)}.items():
    out = model.generate(prompt_ids, max_new_tokens=n_new, generator=torch.Generator().manual_seed(1), **kwargs)
    print(f"{name:12s} {tok.decode(out[0].tolist())!r}")

# %% [markdown]
# *Try it yourself:* `minitransformer exercises start 5` — write `filter_top_k` and `filter_top_p`.
#
# ## 6. The KV cache
#
# Without a cache, generating token n re-runs the model over all n previous tokens: the total work
# grows with the square of the length. But the keys and values of earlier positions never change
# (a causal model cannot look ahead), so we can keep them per layer and feed only the newest token:
# its query attends to the cached keys. Same output, far less work. The plot shows the cumulative
# time to generate each token, with and without the cache (an untrained 4-layer model with a
# 512-token context, greedy decoding, so both runs must produce identical tokens).

# %%
big = mt.GPT(mt.GPTConfig(vocab_size=tok.vocab_size, max_seq_len=512, d_model=128, n_layers=4, n_heads=4,
                          dropout=0.0)).eval()
n_tokens = 24 if FAST else 400
start_ids = torch.tensor([tok.encode("ROMEO.")])
for use_cache in (True, False):  # warm-up: the first call of each path pays one-time setup costs
    big.generate(start_ids, max_new_tokens=2, do_sample=False, use_cache=use_cache)


def timed_generate(use_cache: bool) -> tuple[torch.Tensor, list[float]]:
    """Greedy generation; the streamer notes the time at which each new token is chosen."""
    stamps: list[float] = []
    t0 = time.perf_counter()
    ids = big.generate(start_ids, max_new_tokens=n_tokens, do_sample=False, use_cache=use_cache,
                       streamer=lambda new: stamps.append(time.perf_counter() - t0))
    return ids, stamps


outputs, timings = {}, {}
for _ in range(3):  # alternate and keep each one's fastest run: another program may steal the CPU
    for use_cache in (True, False):
        ids, stamps = timed_generate(use_cache)
        if use_cache not in timings or stamps[-1] < timings[use_cache][-1]:
            outputs[use_cache], timings[use_cache] = ids, stamps
assert torch.equal(outputs[True], outputs[False]), "the cache must not change the result"
speedup = timings[False][-1] / timings[True][-1]
print(f"{n_tokens} tokens: {timings[True][-1]:.2f} s with the cache, {timings[False][-1]:.2f} s without "
      f"({speedup:.1f}x as fast with it, best of 3 on this machine); identical tokens")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(range(1, n_tokens + 1), timings[True], label="with KV cache")
ax.plot(range(1, n_tokens + 1), timings[False], label="without (recompute everything)")
ax.set_xlabel("tokens generated")
ax.set_ylabel("seconds so far")
ax.set_title("Generation cost: linear with a cache, quadratic without")
ax.legend()
save(fig, "kv_cache")

# %% [markdown]
# ## What to remember
#
# - GPT = embeddings + N × pre-LN causal decoder layers + final norm + tied LM head. BERT and T5 use
#   the same layers with other settings.
# - About 12·d² parameters per layer; embeddings add V·d.
# - Training is next-token cross-entropy at every position at once.
# - Sampling settings trade safety for variety. The KV cache keeps the cost of each new token almost
#   flat (at this size the layer maps dominate; attention over the cache still grows with length),
#   so the total grows about linearly with length instead of quadratically.
#
# Next: `04_bert.py` — the same layers, bidirectional, trained by filling in blanks.
