"""GPT: a causal (left-to-right) Transformer language model, in the shape of GPT-2.

Radford et al. 2018 ("Improving Language Understanding by Generative Pre-Training") and 2019
("Language Models are Unsupervised Multitask Learners", §2.3), whose model is a stack of
decoder layers without cross-attention:

    ids (B, T) ──> token embedding + learned position embedding ──> dropout
                ──> n_layers x [ x + Attn(LN(x)) ;  x + FFN(LN(x)) ]      (pre-LN, causal)
                ──> final LayerNorm ──> LM head (the token embedding matrix, transposed)
                ──> logits (B, T, vocab_size): a score for every possible next token

GPT-2's changes to GPT-1, all here: LayerNorm moved to the input of each sub-block (pre-LN) with
one more after the last layer, residual projections initialised smaller by 1/√(2·n_layers),
context 1024. GPT-3 (Brown et al. 2020) keeps this shape and scales it up.

The model is trained to predict token t+1 from tokens 0..t: pass ``labels=input_ids`` and the
shift happens inside (as in Hugging Face's GPT2LMHeadModel); label -100 means "ignore".

``GPTConfig.position`` swaps GPT-2's learned position vectors for another scheme, to compare them
on the same model: fixed sinusoids added the same way, or nothing added to the tokens and the
position put into attention instead, by RoPE (queries and keys rotated, as in GPT-NeoX and LLaMA)
or ALiBi (a distance penalty on the scores, as in BLOOM). See ``minitransformer.nn.position``.
With ``rotary_fraction`` and ``parallel_residual`` (attention and feed-forward side by side) it is
GPT-NeoX's shape, Pythia's too (``interop/gpt_neox.py``).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer.models.config import GPTConfig
from minitransformer.nn.attention import check_padding_mask, padding_bias
from minitransformer.nn.dropout import Dropout
from minitransformer.nn.embeddings import (
    LearnedPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TokenEmbedding,
    check_ids,
    check_new_vocab_size,
    padded_vocab_logits,
    resize_vocab_rows,
)
from minitransformer.nn.layers import DecoderCache, DecoderLayer
from minitransformer.nn.norms import make_norm
from minitransformer.nn.position import ALiBi, RotaryEmbedding

IGNORE_INDEX = -100  # labels with this value do not count in the loss


@dataclass
class GPTOutput:
    """What ``GPT.forward`` returns."""

    logits: torch.Tensor  # (B, T, vocab_size), or (B, 1, vocab_size) with last_only=True; on a GPU a view, not contiguous
    loss: torch.Tensor | None = None  # mean cross-entropy over labels != -100
    attentions: list[torch.Tensor] | None = None  # per layer (B, n_heads, T, T_total), if asked


class GPT(nn.Module):
    """A GPT-2-style language model built from the shared blocks in ``minitransformer.nn``."""

    logits_multiple_of: int | None = None  # padded_vocab_logits' padding: None = 8 on a GPU, 1 on the CPU

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT expects a GPTConfig, got {type(config).__name__}")
        self.config = c = config
        self.tok_emb = TokenEmbedding(c.vocab_size, c.d_model)  # wte
        # One of four position schemes (GPT-2's is "learned"); the others leave their modules None.
        self.pos_emb = (LearnedPositionalEmbedding(c.max_seq_len, c.d_model) if c.position == "learned"  # wpe
                        else SinusoidalPositionalEncoding(c.max_seq_len, c.d_model) if c.position == "sinusoidal"
                        else None)
        self.rotary = RotaryEmbedding(c.rotary_dims, c.rope_base) if c.position == "rope" else None
        self.alibi = ALiBi(c.n_heads) if c.position == "alibi" else None
        self.drop = Dropout(c.dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(c.d_model, c.n_heads, c.d_ff, cross_attention=False, pre_norm=True,
                         dropout=c.dropout, activation=c.activation, norm="layernorm", norm_eps=c.norm_eps,
                         bias=c.bias, backend=c.attention_backend, parallel=c.parallel_residual)
            for _ in range(c.n_layers)
        )
        self.final_norm = make_norm("layernorm", c.d_model, c.norm_eps, c.bias)  # GPT-2's ln_f
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            # One matrix both reads tokens in and scores them out (Press & Wolf 2017).
            self.lm_head.weight = self.tok_emb.weight
        if not self.tok_emb.weight.is_meta:  # on the meta device (counting parameters) there is nothing to fill
            self.apply(self._init_weights)
            # GPT-2 §2.3: scale the weights of residual layers by 1/√N, N = number of residual
            # additions (2 per layer), so the residual stream's variance does not grow with depth.
            for layer in self.layers:
                nn.init.normal_(layer.self_attn.out.weight, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))
                nn.init.normal_(layer.ffn.fc_out.weight, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """GPT-2's initialisation: weights N(0, 0.02), biases 0 (norms keep weight 1, bias 0)."""
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        need_weights: bool = False,
        last_only: bool = False,
    ) -> GPTOutput:
        """Next-token logits for every position (and the loss if ``labels`` are given).

        Args:
            input_ids: (B, T) token ids in [0, vocab_size).
            labels: (B, T) targets aligned with ``input_ids`` (usually ``input_ids`` itself):
                position t is scored on ``labels[:, t + 1]``; -100 is ignored, and so are the
                predictions made at padded positions (``attention_mask == 0``).
            attention_mask: (B, T_past + T), 1 for real tokens, 0 for padding. Padded keys are
                never attended to, and positions count from each row's first real token.
            position_ids: (B|1, T) explicit positions (default: from the mask, or T_past, T_past+1, ...).
            cache: a ``DecoderCache`` holding keys/values of the T_past tokens seen before
                (incremental decoding, see ``minitransformer.generation``); it is extended in place.
            need_weights: also return each layer's attention weights (manual attention, slower).
            last_only: compute logits for the last position only (generation: saves the LM head).
        """
        if cache is not None and (not isinstance(cache, DecoderCache) or len(cache.self_attn) != self.config.n_layers):
            raise ValueError("cache must be this model's own DecoderCache (from model.new_cache()), one entry a layer")
        past = 0 if cache is None else cache.length
        B, T = self._check_inputs(input_ids, labels, attention_mask, position_ids, past)
        if past and cache.self_attn[0].k.shape[0] != B:
            raise ValueError(f"the cache holds {cache.self_attn[0].k.shape[0]} rows but input_ids has {B}")
        if labels is not None and last_only:
            raise ValueError("last_only=True computes one position's logits; it cannot be combined with labels")
        device = input_ids.device

        user_positions = position_ids is not None  # ours below are in range: past + T <= max_seq_len was checked
        attn_bias = None
        key_positions = position_ids if past == 0 else None  # every key's position (ALiBi needs them)
        if attention_mask is not None and (torch.compiler.is_compiling() or not bool(attention_mask.all())):
            # Padding: real tokens must not see padded ones. Built in the dtype attention will run
            # in (autocast's, if on) so the "very negative" number stays finite there.
            amp = torch.is_autocast_enabled(device.type)
            bias_dtype = torch.get_autocast_dtype(device.type) if amp else self.tok_emb.weight.dtype
            attn_bias = padding_bias(attention_mask, dtype=bias_dtype)  # (B, 1, 1, T_past + T)
            if position_ids is None:
                # Left padding: the first real token of each row is position 0 (padding sits at 0 too;
                # its position never matters because nothing attends to it).
                key_positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T_past + T)
                position_ids = key_positions[:, past:]  # (B, T)
        if position_ids is None:
            key_positions = torch.arange(past + T, device=device).unsqueeze(0)  # (1, T_past + T)
            position_ids = key_positions[:, past:]  # (1, T)
        padded = attn_bias is not None  # (then the loss leaves padded positions out)

        x = self.tok_emb(input_ids)  # (B, T, C)
        if self.config.position == "sinusoidal":
            # Vaswani et al. §3.4: token vectors times √d_model, so that they are not drowned by the
            # fixed sines and cosines (size 1; GPT-2's initialisation makes token vectors ~0.02)
            x = x * math.sqrt(self.config.d_model)
        if self.pos_emb is not None:  # learned or sinusoidal: a vector for each position, added to its token
            x = x + self.pos_emb(position_ids, check=user_positions)
        x = self.drop(x)
        rotary = self.rotary(position_ids) if self.rotary is not None else None  # RoPE: angles for q and k
        if self.alibi is not None:  # ALiBi: a penalty for distance, added to every layer's scores
            alibi = self.alibi(position_ids, key_positions)  # (B|1, h, T, T_past + T)
            attn_bias = alibi if attn_bias is None else alibi + attn_bias  # float32, + padding
        attentions = []
        for i, layer in enumerate(self.layers):
            x, weights = layer(x, attn_bias=attn_bias, self_cache=None if cache is None else cache.self_attn[i],
                               need_weights=need_weights, rotary=rotary)
            attentions.append(weights)
        x = self.final_norm(x)  # (B, T, C)
        if last_only:
            x = x[:, -1:, :]  # (B, 1, C)
        # self.lm_head(x), with the vocabulary padded to a multiple of 8 on a GPU (fast kernels); the
        # pad columns score so low that the loss and its gradients are those of the V real columns
        # (generation's last_only scores one row per sequence: a matrix-vector product gains nothing from it)
        scores = padded_vocab_logits(x, self.lm_head.weight,
                                     multiple_of=1 if last_only else self.logits_multiple_of)  # (B, T, V + pad)
        logits = scores[..., :self.config.vocab_size]  # (B, T, V); not contiguous when padded

        loss = None
        if labels is not None:
            # Position t predicts token t+1: shift the labels left (not the logits, which would copy
            # the big (B, T, V) tensor) and ignore the last position, which has no next token.
            targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # (B, T)
            if padded:
                # A padded position has no context, so it predicts nothing; and a padded token is
                # not a target either (right padding: the last real token must not learn "pad").
                real = attention_mask[:, past:] != 0  # (B, T)
                scored = real & F.pad(real[:, 1:], (0, 1), value=False)
                targets = targets.masked_fill(~scored, IGNORE_INDEX)
            if not torch.compiler.is_compiling():
                V = self.config.vocab_size
                bad = (labels >= V) | ((labels < 0) & (labels != IGNORE_INDEX))
                any_bad, any_target = torch.stack([bad.any(), (targets != IGNORE_INDEX).any()]).tolist()
                if any_bad:
                    raise ValueError(f"labels must be in [0, {V}) or {IGNORE_INDEX} (ignore), got {int(labels[bad][0])}")
                if not any_target:
                    raise ValueError("no position has a target to predict (every next-token label is -100 or "
                                     "padding, or the sequence is one token long): the mean loss would be NaN")
            loss = F.cross_entropy(scores.reshape(-1, scores.size(-1)).float(), targets.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return GPTOutput(logits=logits, loss=loss, attentions=attentions if need_weights else None)

    def _check_inputs(self, input_ids: torch.Tensor, labels: torch.Tensor | None,
                      attention_mask: torch.Tensor | None, position_ids: torch.Tensor | None,
                      past: int) -> tuple[int, int]:
        """Clear errors for bad inputs; returns (B, T). Value checks are skipped under torch.compile."""
        compiling = torch.compiler.is_compiling()
        if compiling:
            B, T = input_ids.shape
        else:
            check_ids(input_ids, self.config.vocab_size)
            B, T = input_ids.shape
            if T == 0:
                raise ValueError("input_ids is empty (sequence length 0)")
        if past + T > self.config.max_seq_len:
            raise ValueError(f"sequence of {past + T} tokens ({past} cached + {T} new) is longer than the "
                             f"model's context max_seq_len={self.config.max_seq_len}")
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise ValueError(f"labels must have the shape of input_ids {tuple(input_ids.shape)}, "
                                 f"got {tuple(labels.shape)}")
            if labels.dtype != torch.long:
                raise TypeError(f"labels must be a torch.long tensor, got {labels.dtype}")
            # their values are checked in forward, with the targets, in one wait for the device
        if attention_mask is not None:  # (batch, cached + new tokens)
            check_padding_mask(attention_mask, (B, past + T), check_values=not compiling)
        if position_ids is not None:
            if not isinstance(position_ids, torch.Tensor) or position_ids.dtype not in (torch.int64, torch.int32):
                raise TypeError(f"position_ids must be a torch.long tensor, got "
                                f"{getattr(position_ids, 'dtype', type(position_ids).__name__)}")
            if position_ids.dim() != 2 or position_ids.shape[1] != T or position_ids.shape[0] not in (1, B):
                raise ValueError(f"position_ids must have shape (batch or 1, {T}), got {tuple(position_ids.shape)}")
            if not compiling and position_ids.numel() and int(position_ids.min()) < 0:
                raise ValueError(f"position_ids must be >= 0, got {int(position_ids.min())}")
            if past and self.alibi is not None:
                raise ValueError("ALiBi with a cache needs the positions of the cached keys too: pass "
                                 "attention_mask (positions count from each row's first real token), not position_ids")
        return B, T

    # ---- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int = 50,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        do_sample: bool = True,
        eos_token_id: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        attention_mask: torch.Tensor | None = None,
        streamer: Callable[[torch.Tensor], Any] | None = None,
        sliding_window: bool = False,
        pad_token_id: int | None = None,
    ) -> torch.Tensor:
        """Continue each prompt; returns (B, T + new) ids. See ``minitransformer.generation.generate``."""
        from minitransformer.generation import generate

        return generate(self, input_ids, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                        top_p=top_p, do_sample=do_sample, eos_token_id=eos_token_id, use_cache=use_cache,
                        generator=generator, attention_mask=attention_mask, streamer=streamer,
                        sliding_window=sliding_window, pad_token_id=pad_token_id)

    def new_cache(self) -> DecoderCache:
        """An empty KV cache for incremental decoding with this model."""
        return DecoderCache(len(self.layers))

    # ---- training helpers ---------------------------------------------------------------------
    def optimizer_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """AdamW parameter groups: decay matrices, not biases, norms or embeddings (see ``minitransformer.optim``)."""
        from minitransformer.optim import param_groups

        return param_groups(self, weight_decay)

    # ---- vocabulary ---------------------------------------------------------------------------
    def resize_token_embeddings(self, new_vocab_size: int) -> TokenEmbedding:
        """Give the model ``new_vocab_size`` token ids (e.g. after adding tokens to its tokenizer).

        Replaces the token embedding and the LM head (tied: still one Parameter) and ``self.config``
        (a new config; the one the model was built from is left as it was). Growing keeps the old
        rows and starts each new one at the mean of the old rows, so a new token first scores the
        average of the old scores (Hewitt 2021; see ``resize_vocab_rows``); shrinking drops the last
        ids. Call it before building the optimizer, which holds the old tensors. Returns the token
        embedding, as Hugging Face's ``resize_token_embeddings`` does.
        """
        c = self.config
        V = check_new_vocab_size(new_vocab_size, eos_token_id=c.eos_token_id)  # before anything changes
        self.tok_emb.weight = resize_vocab_rows(self.tok_emb.weight, V)  # (V, C)
        self.lm_head.weight = (self.tok_emb.weight if c.tie_embeddings  # one matrix in and out, as before
                               else resize_vocab_rows(self.lm_head.weight, V))  # (V, C)
        self.tok_emb.num_embeddings = self.lm_head.out_features = V
        self.config = replace(c, vocab_size=V)
        return self.tok_emb

    # ---- files --------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (tied LM head stored once; no ``_orig_mod.`` keys)."""
        from minitransformer.interop.files import save_pretrained, unwrap_model

        model = unwrap_model(self)  # the plain module, also when called on a torch.compile wrapper
        return save_pretrained(model, model.config, folder, family="gpt")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> GPT:
        """Load our folder (config.json with "family": "gpt") or a local Hugging Face GPT-2 or GPT-NeoX folder.

        Reads ``model.safetensors`` (or ``pytorch_model.bin`` with ``weights_only=True``); never downloads.
        """
        from minitransformer.interop import gpt2 as gpt2_interop
        from minitransformer.interop import gpt_neox as gpt_neox_interop
        from minitransformer.interop.files import load_state_dict_checked, load_weights, read_config_json

        data = read_config_json(folder)
        if "model_type" in data:  # a Hugging Face folder
            interop = {"gpt2": gpt2_interop, "gpt_neox": gpt_neox_interop}.get(data["model_type"])
            if interop is None:
                raise ValueError(f"{folder} holds a Hugging Face {data['model_type']!r} model; GPT reads 'gpt2' "
                                 "and 'gpt_neox'")
            config = interop.config_from_hf(data)
            state_dict = interop.state_dict_from_hf(load_weights(folder), config)
        else:
            family = data.get("family", "gpt")
            if family != "gpt":
                raise ValueError(f"{folder} holds a {family!r} model, not a GPT")
            config = GPTConfig.from_dict(data)
            state_dict = load_weights(folder)
        model = cls(config)
        load_state_dict_checked(model, state_dict)
        return model.eval()
