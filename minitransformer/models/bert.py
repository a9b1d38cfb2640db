"""BERT: a bidirectional Transformer encoder pretrained by masked-language modelling (Devlin et al. 2019).

Read top to bottom:

1. ``BertEmbeddings``: token + position + segment (token-type) embeddings, LayerNorm, dropout (§3, Fig. 2).
2. ``Bert``: the embeddings, a stack of post-LN encoder layers (the shared ``EncoderLayer`` with
   ``pre_norm=False`` and exact GELU), and the heads its config switches on: the pooler (dense +
   tanh on ``[CLS]``), the masked-LM head (tied to the token embedding), next-sentence prediction,
   and ELECTRA's replaced-token discriminator. ``forward`` checks its inputs, encodes, applies the
   heads and adds up the losses.
3. ``ElectraPretraining``: ELECTRA's full objective (Clark et al. 2020): a small BERT generator fills
   masked positions, a BERT discriminator spots which tokens were replaced.

Two published relatives are configurations of the same module (see ``BertConfig`` presets):

- RoBERTa (Liu et al. 2019): no NSP, one token type, a byte-level BPE vocabulary, and positions that
  start after the padding id: real tokens are numbered from ``pad_token_id + 1`` in order, skipping
  padding tokens, which all use row ``pad_token_id`` (``position_offset=2`` for ``pad_token_id=1``).
- ELECTRA (Clark et al. 2020): embeddings may be narrower than the hidden states
  (``embedding_size < d_model``), with a linear projection after the embedding LayerNorm.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer.models.config import BertConfig
from minitransformer.models.heads import ClassificationHead, DiscriminatorHead, MLMHead, Pooler
from minitransformer.nn.attention import check_padding_mask, padding_bias
from minitransformer.nn.dropout import Dropout
from minitransformer.nn.embeddings import (
    LearnedPositionalEmbedding,
    SegmentEmbedding,
    TokenEmbedding,
    check_ids,
    check_new_vocab_size,
    resize_vocab_rows,
)
from minitransformer.nn.layers import EncoderLayer
from minitransformer.nn.norms import LayerNorm

IGNORE_INDEX = -100  # label value of positions that do not count in a loss
INIT_STD = 0.02  # std of the normal initialisation of weights (BERT's initializer_range)


@dataclass
class BertOutput:
    """What ``Bert.forward`` returns. A field is None when the config has no such head (or no labels)."""

    last_hidden_state: torch.Tensor  # (B, T, d_model)
    pooled: torch.Tensor | None = None  # (B, d_model): dense + tanh on [CLS]
    mlm_logits: torch.Tensor | None = None  # (B, T, V)
    nsp_logits: torch.Tensor | None = None  # (B, 2): 0 = B follows A, 1 = B is random
    discriminator_logits: torch.Tensor | None = None  # (B, T): > 0 means "replaced" (ELECTRA)
    loss: torch.Tensor | None = None  # the sum of the losses below that were computed
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None
    discriminator_loss: torch.Tensor | None = None
    attentions: list[torch.Tensor] | None = None  # per layer (B, h, T, T), with need_weights=True


class BertEmbeddings(nn.Module):
    """Input representation = token + segment + position embedding, then LayerNorm and dropout.

    Devlin et al. 2019 §3 and Figure 2. ``forward`` takes the position ids the model computed
    (plain 0..T-1 for BERT, RoBERTa's padding-aware numbering otherwise).
    """

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        e = cfg.embedding_size
        self.word = TokenEmbedding(cfg.vocab_size, e, padding_idx=cfg.pad_token_id)
        self.position = LearnedPositionalEmbedding(cfg.max_seq_len, e, offset=cfg.position_offset)
        if cfg.position_offset > 0:
            # RoBERTa's padding row (just before the first real position) gets no gradient, as in fairseq.
            self.position.padding_idx = cfg.position_offset - 1
        self.segment = SegmentEmbedding(cfg.type_vocab_size, e)
        self.norm = LayerNorm(e, eps=cfg.norm_eps)
        self.dropout = Dropout(cfg.dropout)

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor,
                token_type_ids: torch.Tensor | None) -> torch.Tensor:  # (B, T) -> (B, T, E)
        x = self.word(input_ids)
        # no token types given: every token is in segment 0 (one row, broadcast; no lookup needed)
        x = x + (self.segment.weight[0] if token_type_ids is None else self.segment(token_type_ids))
        x = x + self.position(positions, check=False)  # built by the model from a checked length
        return self.dropout(self.norm(x))


class Bert(nn.Module):
    """A BERT-style encoder with optional pooler, MLM, NSP and discriminator heads (see module docstring)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"Bert needs a BertConfig, got {type(config).__name__}")
        self.config = cfg = config
        d = cfg.d_model
        self.embeddings = BertEmbeddings(cfg)
        # ELECTRA: narrower embeddings are projected up to the hidden size.
        self.embed_proj = nn.Linear(cfg.embedding_size, d) if cfg.embedding_size != d else None
        self.layers = nn.ModuleList(
            EncoderLayer(d, cfg.n_heads, cfg.d_ff, dropout=cfg.dropout, activation=cfg.activation,
                         norm="layernorm", norm_eps=cfg.norm_eps, pre_norm=False, backend=cfg.attention_backend)
            for _ in range(cfg.n_layers)
        )
        self.pooler = Pooler(d) if cfg.pooler else None
        self.mlm_head = MLMHead(d, cfg.embedding_size, cfg.vocab_size, cfg.mlm_head_activation or cfg.activation,
                                cfg.norm_eps) \
            if cfg.mlm_head else None
        self.nsp_head = ClassificationHead(d, 2) if cfg.nsp_head else None
        self.discriminator_head = DiscriminatorHead(d, cfg.activation) if cfg.discriminator_head else None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """BERT's initialisation: weights ~ N(0, 0.02), biases 0, LayerNorm 1 and 0, padding rows 0."""
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    # ---- inputs -----------------------------------------------------------------------------
    def _check_inputs(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None,
                      attention_mask: torch.Tensor | None) -> None:
        cfg = self.config
        check_ids(input_ids, cfg.vocab_size, "input_ids")
        B, T = input_ids.shape
        if B == 0 or T == 0:
            raise ValueError(f"input_ids must hold at least one row and one token, got shape {(B, T)}")
        if T > cfg.max_seq_len:
            raise ValueError(f"input_ids has {T} positions, more than the position table holds "
                             f"(max_seq_len={cfg.max_seq_len}); truncate the input")
        if token_type_ids is not None:
            check_ids(token_type_ids, cfg.type_vocab_size, "token_type_ids")
            if token_type_ids.shape != input_ids.shape:
                raise ValueError(f"token_type_ids must have the shape of input_ids {(B, T)}, "
                                 f"got {tuple(token_type_ids.shape)}")
        if attention_mask is not None:
            check_padding_mask(attention_mask, (B, T))

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Positions fed to the position table: (1, T) for BERT, (B, T) for RoBERTa-style numbering.

        With ``position_offset > 0`` real tokens are numbered 0, 1, 2, ... in order, skipping
        padding tokens (``input_ids == pad_token_id``), and every padding token gets -1, i.e. the
        table's padding row ``position_offset - 1``. For RoBERTa this is exactly
        ``cumsum(input_ids != pad) * (input_ids != pad) + pad`` in table rows.
        """
        if self.config.position_offset == 0:
            return torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)  # (1, T)
        real = (input_ids != self.config.pad_token_id).long()  # (B, T)
        return torch.cumsum(real, dim=1) * real - 1

    # ---- the encoder ------------------------------------------------------------------------
    def encode(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None,
               need_weights: bool = False) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """input_ids (B, T) -> final hidden states (B, T, d_model) and, if asked, attention weights.

        No heads are applied: this is what sentence embeddings and fine-tuning read.
        """
        self._check_inputs(input_ids, token_type_ids, attention_mask)
        x = self.embeddings(input_ids, self.position_ids(input_ids), token_type_ids)  # (B, T, E)
        if self.embed_proj is not None:
            x = self.embed_proj(x)  # (B, T, C)
        # Padding: a large negative bias on padded keys. Skipped when nothing is padded (faster kernels).
        attn_bias = None
        if attention_mask is not None and not bool(attention_mask.all()):
            attn_bias = padding_bias(attention_mask, dtype=x.dtype)  # (B, 1, 1, T)
        attentions = [] if need_weights else None
        for layer in self.layers:
            x, weights = layer(x, attn_bias=attn_bias, need_weights=need_weights)
            if attentions is not None:
                attentions.append(weights)
        return x, attentions

    # ---- the whole model --------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        nsp_labels: torch.Tensor | None = None,
        discriminator_labels: torch.Tensor | None = None,
        return_mlm_logits: bool = True,
        need_weights: bool = False,
    ) -> BertOutput:
        """Encode and apply the heads.

        Args:
            input_ids: (B, T) token ids.
            token_type_ids: (B, T) segment ids in [0, type_vocab_size); None means all 0.
            attention_mask: (B, T), 1 for real tokens and 0 for padding; None means no padding.
            mlm_labels: (B, T) original ids at the positions to predict, -100 elsewhere. The MLM
                loss is the mean over the selected positions only (padding and unselected
                positions contribute nothing); 0 if none is selected.
            nsp_labels: (B,) 0 if segment B follows A, 1 if it is random (-100: ignore).
            discriminator_labels: (B, T) 1 where a token was replaced, 0 where original (ELECTRA);
                the loss averages over real (unpadded) tokens.
            return_mlm_logits: False skips the (B, T, V) logits; the MLM loss is then computed
                on the selected positions alone, which saves most of the head's cost in training
                (as Google's BERT does with its ``masked_lm_positions``).
            need_weights: also return every layer's attention weights (manual attention formula).
        """
        cfg = self.config
        for name, labels, head in (("mlm_labels", mlm_labels, self.mlm_head), ("nsp_labels", nsp_labels, self.nsp_head),
                                   ("discriminator_labels", discriminator_labels, self.discriminator_head)):
            if labels is not None and head is None:
                raise ValueError(f"{name} were given but this model has no such head "
                                 f"(BertConfig: pooler={cfg.pooler}, mlm_head={cfg.mlm_head}, "
                                 f"nsp_head={cfg.nsp_head}, discriminator_head={cfg.discriminator_head})")
        hidden, attentions = self.encode(input_ids, token_type_ids, attention_mask, need_weights)  # (B, T, C)
        out = BertOutput(last_hidden_state=hidden, attentions=attentions)
        losses = []

        if self.pooler is not None:
            out.pooled = self.pooler(hidden)  # (B, C)

        if self.mlm_head is not None:
            word_weight = self.embeddings.word.weight  # (V, E): the output matrix is the input embedding
            if return_mlm_logits:
                out.mlm_logits = self.mlm_head(hidden, word_weight)  # (B, T, V)
            if mlm_labels is not None:
                selected = self._check_labels(mlm_labels, input_ids.shape, cfg.vocab_size, "mlm_labels")  # (B, T)
                n_selected = selected.sum()
                selected_logits = (out.mlm_logits[selected] if out.mlm_logits is not None  # (N, V)
                                   else self.mlm_head(hidden[selected], word_weight, padded=True))  # (N, V + pad)
                out.mlm_loss = F.cross_entropy(selected_logits, mlm_labels[selected].long(),
                                               reduction="sum") / n_selected.clamp(min=1)
                losses.append(out.mlm_loss)

        if self.nsp_head is not None:
            out.nsp_logits = self.nsp_head(out.pooled)  # (B, 2)
            if nsp_labels is not None:
                counted = self._check_labels(nsp_labels, input_ids.shape[:1], 2, "nsp_labels")
                # a mean over the counted pairs, 0 if none counts (like the MLM loss above, not NaN)
                out.nsp_loss = F.cross_entropy(out.nsp_logits, nsp_labels.long(), ignore_index=IGNORE_INDEX,
                                               reduction="sum") / counted.sum().clamp(min=1)
                losses.append(out.nsp_loss)

        if self.discriminator_head is not None:
            out.discriminator_logits = self.discriminator_head(hidden)  # (B, T)
            if discriminator_labels is not None:
                out.discriminator_loss = self._discriminator_loss(out.discriminator_logits, discriminator_labels,
                                                                  attention_mask)
                losses.append(out.discriminator_loss)

        if losses:
            out.loss = losses[0] if len(losses) == 1 else torch.stack(losses).sum()
        return out

    @staticmethod
    def _check_labels(labels: torch.Tensor, shape: torch.Size, n_classes: int, name: str) -> torch.Tensor:
        """Raise unless labels have ``shape`` and values in [0, n_classes) or -100; return where they count."""
        if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{name} must be an integer (torch.long) tensor, got "
                            f"{getattr(labels, 'dtype', type(labels).__name__)}")
        if labels.shape != shape:
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(labels.shape)}")
        counted = labels != IGNORE_INDEX
        if bool(((labels < 0) | (labels >= n_classes)).logical_and(counted).any()):
            raise ValueError(f"{name} must be in [0, {n_classes}) or {IGNORE_INDEX} (ignore)")
        return counted

    @staticmethod
    def _discriminator_loss(logits: torch.Tensor, labels: torch.Tensor,
                            attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Binary cross-entropy of "replaced?" averaged over real tokens (Clark et al. 2020 §2)."""
        if labels.shape != logits.shape:
            raise ValueError(f"discriminator_labels must have shape {tuple(logits.shape)}, got {tuple(labels.shape)}")
        if bool(((labels != 0) & (labels != 1)).any()):
            raise ValueError("discriminator_labels must hold 0 (original) or 1 (replaced)")
        if attention_mask is None:
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        real = attention_mask != 0  # a mean over real tokens, 0 if there are none (not NaN)
        return (F.binary_cross_entropy_with_logits(logits[real], labels[real].float(), reduction="sum")
                / real.sum().clamp(min=1))

    # ---- vocabulary -------------------------------------------------------------------------
    def resize_token_embeddings(self, new_vocab_size: int) -> TokenEmbedding:
        """Give the model ``new_vocab_size`` token ids (e.g. after adding tokens to its tokenizer).

        Replaces the word embedding, which is also the MLM head's output matrix (tied: nothing else
        to do), the MLM head's output bias (V,), and ``self.config`` (a new config). Growing keeps
        the old rows and entries and starts the new ones at the mean of the old ones: a new token
        then first scores the average of the old scores (Hewitt 2021; see ``resize_vocab_rows``).
        transformers 5 pads this tied head's bias with zeros instead, which scores a new token
        ``-mean(bias)`` above that average. Shrinking drops the last ids. Call it before building
        the optimizer, which holds the old tensors. Returns the word embedding, as Hugging Face does.
        """
        V = check_new_vocab_size(new_vocab_size, pad_token_id=self.config.pad_token_id)  # before anything changes
        word = self.embeddings.word
        word.weight = resize_vocab_rows(word.weight, V)  # (V, E)
        word.num_embeddings = V
        if self.mlm_head is not None:
            self.mlm_head.bias = resize_vocab_rows(self.mlm_head.bias, V)  # (V,)
        self.config = dataclasses.replace(self.config, vocab_size=V)
        return word

    # ---- files ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Bert:
        """Load a model folder: ours (``save_pretrained``) or a local Hugging Face one. Never downloads.

        Hugging Face folders may hold a BERT, RoBERTa or ELECTRA checkpoint with or without heads
        (a bare ``BertModel`` like all-MiniLM-L6-v2 has only the encoder and pooler). The model gets
        the heads whose weights are there; the family's pretraining heads that are not there are
        named in a warning and listed in ``model.absent_heads`` (e.g. ``["mlm_head", "nsp_head"]``).
        Missing encoder weights, unknown keys or wrong shapes are errors naming the keys.
        """
        from minitransformer.interop import bert as bert_interop
        from minitransformer.interop.files import load_state_dict_checked, load_weights, read_config_json

        data = read_config_json(folder)
        weights = load_weights(folder)
        absent: list[str] = []
        if "model_type" in data:  # a Hugging Face folder
            # what the family's pretraining model has (BertForPreTraining, RobertaForMaskedLM, ...)
            expected = bert_interop.config_from_hf({**data, "architectures": None})
            present = bert_interop.heads_in_hf_state_dict(weights)
            cfg = dataclasses.replace(expected, **present)
            absent = [name for name, there in present.items() if getattr(expected, name) and not there]
            state = bert_interop.state_dict_from_hf(weights, cfg)
        elif data.get("family") == "bert":
            cfg, state = BertConfig.from_dict(data), weights
        else:
            raise ValueError(f"{folder}/config.json is neither a Hugging Face config (no 'model_type') "
                             f"nor a minitransformer BERT folder (family={data.get('family')!r})")
        model = cls(cfg)
        load_state_dict_checked(model, state)
        model.absent_heads = absent
        if absent:
            plain = {"pooler": "pooler", "mlm_head": "MLM head", "nsp_head": "NSP head",
                     "discriminator_head": "discriminator head"}
            warnings.warn(f"{folder} holds no weights for: {', '.join(plain[name] for name in absent)}; the model "
                          f"was built without {'it' if len(absent) == 1 else 'them'} "
                          f"({', '.join(f'{name}=False' for name in absent)})", stacklevel=2)
        return model.eval()  # like GPT and T5: ready to use, dropout off (call .train() to fine-tune)

    def save_pretrained(self, folder: str | Path, tokenizer=None) -> Path:
        """Write config.json + model.safetensors (+ tokenizer.json if a tokenizer is given) atomically."""
        from minitransformer.interop.files import save_pretrained

        extra = {"tokenizer.json": json.dumps(tokenizer.to_hf_dict(), ensure_ascii=False)} if tokenizer else None
        return save_pretrained(self, self.config, folder, family="bert", extra_files=extra)


# ---- ELECTRA's full objective ---------------------------------------------------------------
@dataclass
class ElectraOutput:
    """What ``ElectraPretraining.forward`` returns."""

    loss: torch.Tensor  # mlm_loss + discriminator_weight * discriminator_loss
    mlm_loss: torch.Tensor  # the generator's masked-LM loss
    discriminator_loss: torch.Tensor
    discriminator_logits: torch.Tensor  # (B, T)
    corrupted_ids: torch.Tensor  # (B, T): the discriminator's input
    replaced: torch.Tensor  # (B, T) bool: the discriminator's targets


class ElectraPretraining(nn.Module):
    """Replaced-token detection (Clark et al. 2020 §2): a generator and a discriminator trained jointly.

    The generator, a small BERT with an MLM head, predicts the masked tokens; its samples replace
    them, and the discriminator (a BERT with the discriminator head) classifies every token as
    original or replaced. Both share the embeddings (§3.2). Loss = L_MLM + λ·L_Disc with λ = 50.
    No gradient flows through the sampling: the generator learns only from its MLM loss.
    """

    def __init__(self, discriminator: BertConfig, generator: BertConfig | None = None,
                 discriminator_weight: float = 50.0) -> None:
        super().__init__()
        if generator is None:
            generator = self.generator_config(discriminator)
        if not discriminator.discriminator_head:
            raise ValueError("the discriminator's BertConfig needs discriminator_head=True")
        if not generator.mlm_head:
            raise ValueError("the generator's BertConfig needs mlm_head=True")
        shared = ("vocab_size", "max_seq_len", "type_vocab_size", "embedding_size", "pad_token_id", "position_offset")
        for name in shared:
            if getattr(generator, name) != getattr(discriminator, name):
                raise ValueError(f"generator and discriminator share their embeddings, so {name} must be equal "
                                 f"(got {getattr(generator, name)} and {getattr(discriminator, name)})")
        self.discriminator = Bert(discriminator)
        self.generator = Bert(generator)
        self.generator.embeddings = self.discriminator.embeddings  # one embedding table for both (§3.2)
        self.discriminator_weight = discriminator_weight

    def resize_token_embeddings(self, new_vocab_size: int) -> TokenEmbedding:
        """Resize the embedding table both models share, the generator's MLM bias and both configs.

        Resize here, not through one half: the two ``Bert`` share one embedding module, so the
        generator's own method would leave the discriminator's config at the old size (its inputs
        would be checked against it) and the discriminator's would leave the generator's MLM bias.
        See ``Bert.resize_token_embeddings`` (call it before building the optimizer).
        """
        self.generator.resize_token_embeddings(new_vocab_size)  # the shared table, the MLM bias, the config
        # the shared table has its new size already (resize_vocab_rows leaves it): only the rest changes
        return self.discriminator.resize_token_embeddings(new_vocab_size)

    @staticmethod
    def generator_config(discriminator: BertConfig, fraction: int = 4) -> BertConfig:
        """A generator ``1/fraction`` the discriminator's width (hidden size, heads, d_ff), as in §3.2."""
        heads = max(1, discriminator.n_heads // fraction)
        d_model = max(heads, discriminator.d_model // fraction // heads * heads)
        return dataclasses.replace(discriminator, d_model=d_model, n_heads=heads,
                                   d_ff=max(1, discriminator.d_ff // fraction), pooler=False, mlm_head=True,
                                   nsp_head=False, discriminator_head=False)

    def forward(self, input_ids: torch.Tensor, mlm_labels: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> ElectraOutput:
        """input_ids (B, T) with masked positions (e.g. from ``mask_tokens``), mlm_labels (B, T) -> losses.

        ``generator`` (a ``torch.Generator``) makes the sampling of replacements reproducible.
        """
        gen = self.generator(input_ids, token_type_ids, attention_mask, mlm_labels=mlm_labels,
                             return_mlm_logits=False)
        selected = mlm_labels != IGNORE_INDEX  # (B, T)
        original = torch.where(selected, mlm_labels, input_ids)  # the uncorrupted text
        with torch.no_grad():  # sample the generator's guesses at the masked positions
            logits = self.generator.mlm_head(gen.last_hidden_state[selected], self.generator.embeddings.word.weight)
            probs = torch.softmax(logits.float(), dim=-1)  # (N, V)
            if generator is not None:  # draw where the generator lives (it may be a CPU one for a GPU model)
                probs = probs.to(generator.device)
            samples = torch.multinomial(probs, 1, generator=generator).squeeze(-1).to(input_ids.device)
        corrupted = original.clone()
        corrupted[selected] = samples
        replaced = corrupted != original  # a correct guess counts as original (§2)
        disc = self.discriminator(corrupted, token_type_ids, attention_mask, discriminator_labels=replaced.long())
        loss = gen.mlm_loss + self.discriminator_weight * disc.discriminator_loss
        return ElectraOutput(loss, gen.mlm_loss, disc.discriminator_loss, disc.discriminator_logits,
                             corrupted, replaced)


__all__ = ["Bert", "BertConfig", "BertEmbeddings", "BertOutput", "ElectraPretraining", "ElectraOutput",
           "IGNORE_INDEX"]
