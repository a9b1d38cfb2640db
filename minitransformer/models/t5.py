"""T5, the Text-to-Text Transfer Transformer (Raffel et al. 2020), built from the shared blocks.

An encoder reads the whole input at once (bidirectional self-attention); a decoder writes the
output one token at a time, attending causally to what it has written and, through
cross-attention, to every position of the encoder's output (Vaswani et al. 2017 §3.1). Every task
is "text in, text out": translation, SQL, even classification answer with words.

What makes it T5 rather than the original Transformer (Raffel et al. 2020 §2.1, §3.1):

- one token embedding, ``shared``, used by the encoder, the decoder and (T5 v1.0) the LM head;
- no absolute positions: a learned *relative position bias* per head is added to the attention
  scores. It is computed once in each stack (bidirectional buckets in the encoder, causal ones in
  the decoder) and every layer of that stack reuses it;
- pre-LN with RMSNorm (no mean, no bias), and no biases anywhere in the linear layers;
- attention scores are *not* scaled by 1/√d_kv (that factor is folded into the query init);
- feed-forward: ReLU (v1.0) or gated GELU (v1.1, Shazeer 2020);
- v1.0 ties the LM head to ``shared`` and scales the decoder output by d_model^-0.5 before it;
  v1.1 has its own ``lm_head`` and no rescale (``T5Config.tie_embeddings``).

The decoder starts from ``decoder_start_token_id`` (the pad id): during training its input is
the labels shifted right by one (``shift_right``), so position t predicts label t.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from minitransformer.beam import beam_search
from minitransformer.generation import check_sampling_args, decode_loop
from minitransformer.models.config import T5Config
from minitransformer.nn.attention import check_padding_mask, padding_bias
from minitransformer.nn.dropout import Dropout
from minitransformer.nn.embeddings import (
    TiedGradient,
    TokenEmbedding,
    check_ids,
    check_new_vocab_size,
    resize_vocab_rows,
    tied_logits,
    tied_lookup,
)
from minitransformer.nn.layers import DecoderCache, DecoderLayer, EncoderLayer
from minitransformer.nn.norms import RMSNorm
from minitransformer.nn.position import RelativePositionBias

IGNORE_INDEX = -100


@dataclass
class T5Output:
    """What ``T5.forward`` returns."""

    logits: torch.Tensor  # (B, T_dec, V): next-token scores at every decoder position
    loss: torch.Tensor | None = None  # mean cross-entropy over labels != -100, if labels were given
    encoder_last_hidden_state: torch.Tensor | None = None  # (B, S, C): what the decoder attended to


def _checked_labels(labels: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``labels`` as torch.long, after checking shape and values (ValueError/TypeError otherwise)."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor (torch.long), got dtype {labels.dtype}")
    if labels.dim() != 2 or labels.shape[1] == 0:
        raise ValueError(f"labels must have shape (batch, target_len) with target_len >= 1, got {tuple(labels.shape)}")
    labels = labels.long()  # in uint8, -100 and 156 are the same number
    counted = labels != IGNORE_INDEX
    bad = counted & ((labels < 0) | (labels >= vocab_size))
    any_bad, any_counted = torch.stack([bad.any(), counted.any()]).tolist()  # one wait for the device, not two
    if any_bad:
        raise ValueError(f"labels must be in [0, {vocab_size}) or -100 (ignored), "
                         f"got {int(labels[bad][0])}")
    if not any_counted:
        raise ValueError("every label is -100 (ignored): the mean loss over no tokens would be NaN")
    return labels


class T5(nn.Module):
    """A T5 encoder-decoder with an LM head. ``T5(config)(input_ids, labels=...)`` -> ``T5Output``."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        if not isinstance(config, T5Config):
            raise TypeError(f"T5 needs a T5Config, got {type(config).__name__}")
        self.config = cfg = config
        layer_kwargs = dict(
            d_head=cfg.d_kv, dropout=cfg.dropout, attn_dropout=cfg.dropout, ffn_dropout=cfg.dropout,
            activation=cfg.feed_forward, norm="rmsnorm", norm_eps=cfg.norm_eps, bias=False, pre_norm=True,
            attn_scale=1.0, backend=cfg.attention_backend,
        )
        self.shared = TokenEmbedding(cfg.vocab_size, cfg.d_model)  # encoder, decoder (and tied LM head)
        self.dropout = Dropout(cfg.dropout)  # on the embeddings and after each final norm, as in T5

        self.encoder_rel_bias = RelativePositionBias(cfg.n_heads, cfg.relative_attention_num_buckets,
                                                     cfg.relative_attention_max_distance, bidirectional=True)
        self.encoder_layers = nn.ModuleList(
            [EncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, **layer_kwargs) for _ in range(cfg.n_layers)])
        self.encoder_final_norm = RMSNorm(cfg.d_model, cfg.norm_eps)

        self.decoder_rel_bias = RelativePositionBias(cfg.n_heads, cfg.relative_attention_num_buckets,
                                                     cfg.relative_attention_max_distance, bidirectional=False)
        self.decoder_layers = nn.ModuleList(
            [DecoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cross_attention=True, **layer_kwargs)
             for _ in range(cfg.n_decoder_layers)])
        self.decoder_final_norm = RMSNorm(cfg.d_model, cfg.norm_eps)

        # v1.0 reuses `shared` as the output matrix; v1.1 learns a separate one.
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_weights()

    # ---- initialisation ------------------------------------------------------------------------
    @torch.no_grad()
    def _init_weights(self) -> None:
        """Mesh-TensorFlow T5 initialisation: normal, std 1/√fan_in; the query also gets 1/√d_kv.

        Since T5 does not divide attention scores by √d_kv, the query projection starts that much
        smaller instead, which gives the same scores at initialisation (Raffel et al. 2020 §2.1).
        The embedding starts at std 1: the encoder's first RMSNorm rescales it anyway, and the
        tied LM head compensates with the d_model^-0.5 rescale. An untied head gets std
        d_model^-0.5 so that its initial logits are O(1).
        """
        if self.shared.weight.is_meta:
            return  # shapes only (parameter counting): nothing to initialise
        cfg = self.config
        d, inner = cfg.d_model, cfg.n_heads * cfg.d_kv
        nn.init.normal_(self.shared.weight, std=1.0)
        if self.lm_head is not None:
            nn.init.normal_(self.lm_head.weight, std=d ** -0.5)
        for rel in (self.encoder_rel_bias, self.decoder_rel_bias):
            nn.init.normal_(rel.bias.weight, std=d ** -0.5)
        for layer in [*self.encoder_layers, *self.decoder_layers]:
            attns = [layer.self_attn] + ([layer.cross_attn] if getattr(layer, "cross_attn", None) else [])
            for attn in attns:
                if attn.cross_attention:
                    nn.init.normal_(attn.q.weight, std=(d * cfg.d_kv) ** -0.5)
                    nn.init.normal_(attn.kv.weight, std=d ** -0.5)
                else:
                    nn.init.normal_(attn.qkv.weight, std=d ** -0.5)  # rows: q | k | v
                    nn.init.normal_(attn.qkv.weight[:inner], std=(d * cfg.d_kv) ** -0.5)
                nn.init.normal_(attn.out.weight, std=inner ** -0.5)
            ffn = layer.ffn
            for lin in (ffn.fc_in, ffn.fc_gate):
                if lin is not None:
                    nn.init.normal_(lin.weight, std=d ** -0.5)
            nn.init.normal_(ffn.fc_out.weight, std=cfg.d_ff ** -0.5)

    # ---- the two stacks ------------------------------------------------------------------------
    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S) ids -> the encoder's output (B, S, C). Inputs are checked as in ``forward``."""
        self._check_encoder_inputs(input_ids, attention_mask)
        return self._encode(self.shared(input_ids), attention_mask)

    def _encode(self, embedded: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """The encoder stack on already looked-up input embeddings (B, S, C) -> (B, S, C)."""
        S = embedded.shape[1]
        bias = self.encoder_rel_bias(S, S)  # (1, h, S, S), shared by every encoder layer
        if attention_mask is not None and not bool(attention_mask.all()):
            bias = bias + padding_bias(attention_mask, bias.dtype)  # (B, h, S, S): padded keys get -inf-ish
        x = self.dropout(embedded)  # (B, S, C)
        for layer in self.encoder_layers:
            x, _ = layer(x, attn_bias=bias)
        return self.dropout(self.encoder_final_norm(x))

    def decode(
        self,
        decoder_input_ids: torch.Tensor,
        memory: torch.Tensor,
        memory_bias: torch.Tensor | None = None,
        cache: DecoderCache | None = None,
        self_bias: torch.Tensor | None = None,
        embedded: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoder ids (B, T) attending to ``memory`` (B, S, C) -> hidden states (B, T, C) after the final norm.

        ``memory_bias`` (B, 1, 1, S) masks padded encoder positions. With a ``cache`` the ids are
        only the *new* positions: their queries sit after the ``cache.length`` cached ones, so the
        relative bias uses those rows (``query_offset``). ``self_bias`` may pass a precomputed
        slice of the decoder's position bias (generation computes the whole table once).
        ``embedded`` (B, T, C) may pass the ids already looked up (``forward`` looks up both stacks' at once).
        """
        T = decoder_input_ids.shape[1]
        past = cache.length if cache is not None else 0
        if self_bias is None:
            self_bias = self.decoder_rel_bias(T, past + T, query_offset=past)  # (1, h, T, past+T)
        x = self.dropout(self.shared(decoder_input_ids) if embedded is None else embedded)  # (B, T, C)
        for i, layer in enumerate(self.decoder_layers):
            x, _ = layer(x, attn_bias=self_bias, memory=memory, memory_bias=memory_bias,
                         self_cache=cache.self_attn[i] if cache is not None else None,
                         cross_cache=cache.cross_attn[i] if cache is not None else None)
        return self.dropout(self.decoder_final_norm(x))

    def lm_logits(self, hidden: torch.Tensor, tied_grad: TiedGradient | None = None) -> torch.Tensor:
        """Decoder hidden states (B, T, C) -> logits (B, T, V). (``tied_grad``: see ``_lookup_both``.)"""
        if self.lm_head is not None:
            return self.lm_head(hidden)
        # Tied head: rescale first, so logits stay O(1) with an embedding of std 1 (Mesh TF T5).
        scaled = hidden * self.config.d_model ** -0.5
        if tied_grad is not None:
            return tied_logits(scaled, self.shared.weight, tied_grad)
        return F.linear(scaled, self.shared.weight)

    def _lookup_both(self, input_ids: torch.Tensor,
                     decoder_input_ids: torch.Tensor) -> tuple[torch.Tensor, TiedGradient | None]:
        """Embeddings of the encoder's and the decoder's ids, in one lookup: (B, S + T, C), and a hand-over.

        Only the cost of training changes, not the result. In backward, a lookup's gradient is a
        (vocab_size, C) table, zero except in the rows of the ids used. PyTorch builds it dense: a
        fresh table (64 MB at t5-small; on a CPU that size also costs page faults, see
        benchmarks/results/t5.md), then adds it to the other uses' gradients. So:

        - one lookup for both stacks builds one table, not two;
        - with the tied LM head (v1.0), whose own gradient is a table anyway, the head hands its
          table to the lookup, which adds its rows into it (``TiedGradient``; pass the returned
          hand-over to ``lm_logits``): one table in all, no copy. Only where that pays: fewer ids
          than table rows (at ``tiny`` the 512-row table is smaller than the 2,560 ids, and the
          plain path measured faster), and on the CPU (a GPU reuses its memory, and its in-place
          row additions would not be deterministic).
        """
        ids = torch.cat([input_ids, decoder_input_ids], dim=1)  # (B, S + T)
        if (self.lm_head is None and ids.numel() < self.config.vocab_size and ids.device.type == "cpu"
                and torch.is_grad_enabled() and self.shared.weight.requires_grad
                and not torch.compiler.is_compiling()):
            tied_grad = TiedGradient()
            return tied_lookup(ids, self.shared.weight, tied_grad), tied_grad
        return F.embedding(ids, self.shared.weight), None

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels (B, T) -> decoder inputs (B, T): ``decoder_start_token_id`` then labels[:, :-1], -100 -> pad."""
        shifted = labels.new_full(labels.shape, self.config.pad_token_id)
        shifted[:, 0] = self.config.decoder_start_token_id
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == IGNORE_INDEX, self.config.pad_token_id)

    # ---- forward -------------------------------------------------------------------------------
    def _check_encoder_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        cfg = self.config
        check_ids(input_ids, cfg.vocab_size, "input_ids")
        if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
            raise ValueError(f"input_ids must hold at least one row and one token per row, got shape "
                             f"{tuple(input_ids.shape)}")
        if input_ids.shape[1] > cfg.max_seq_len:
            raise ValueError(f"input_ids has {input_ids.shape[1]} tokens; this model accepts at most "
                             f"max_seq_len={cfg.max_seq_len}")
        if attention_mask is not None:
            check_padding_mask(attention_mask, input_ids.shape)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> T5Output:
        """input_ids (B, S), attention_mask (B, S) of 1/0, decoder_input_ids or labels (B, T) -> T5Output.

        Give ``labels`` (targets, -100 = ignore) to train: the decoder input is then
        ``shift_right(labels)`` unless ``decoder_input_ids`` is given too.
        """
        cfg = self.config
        self._check_encoder_inputs(input_ids, attention_mask)
        if labels is None and decoder_input_ids is None:
            raise ValueError("T5 needs `labels` (to train; the decoder input is labels shifted right) or "
                             "`decoder_input_ids` (to score a given decoder input); got neither")
        if labels is not None:
            labels = _checked_labels(labels, cfg.vocab_size)
            if decoder_input_ids is None:
                decoder_input_ids = self.shift_right(labels)
        check_ids(decoder_input_ids, cfg.vocab_size, "decoder_input_ids")
        B, T = decoder_input_ids.shape
        if B != input_ids.shape[0]:
            raise ValueError(f"decoder batch size {B} differs from input_ids batch size {input_ids.shape[0]}")
        if T == 0 or T > cfg.max_seq_len:
            raise ValueError(f"the decoder input has {T} positions; allowed: 1 to max_seq_len={cfg.max_seq_len}")
        if labels is not None and labels.shape != decoder_input_ids.shape:
            raise ValueError(f"labels {tuple(labels.shape)} and decoder_input_ids {tuple(decoder_input_ids.shape)} "
                             "must have the same shape")

        S = input_ids.shape[1]
        embedded, tied_grad = self._lookup_both(input_ids, decoder_input_ids)  # (B, S + T, C)
        memory = self._encode(embedded[:, :S], attention_mask)  # (B, S, C)
        memory_bias = None
        if attention_mask is not None and not bool(attention_mask.all()):
            memory_bias = padding_bias(attention_mask, memory.dtype)  # (B, 1, 1, S)
        hidden = self.decode(decoder_input_ids, memory, memory_bias, embedded=embedded[:, S:])  # (B, T, C)
        logits = self.lm_logits(hidden, tied_grad)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.reshape(-1).long(),
                                   ignore_index=IGNORE_INDEX)
        return T5Output(logits=logits, loss=loss, encoder_last_hidden_state=memory)

    # ---- generation ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 50,
        num_beams: int = 1,
        length_penalty: float = 1.0,
        early_stopping: bool | str = False,
        eos_token_id: int | None = None,
        use_cache: bool = True,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Greedy, sampled or beam-search decoding -> ids (B, 1 + n), n <= max_new_tokens.

        Each row starts with ``decoder_start_token_id``; a row that has produced ``eos_token_id``
        (default: the config's) is padded with ``pad_token_id`` afterwards, and decoding stops
        when every row is done. The encoder runs once; with ``use_cache`` the decoder keeps its
        keys and values (``DecoderCache``; the self-attention part follows the beams as they are
        chosen) so each step feeds one token.

        ``num_beams=1``: greedy, or with ``do_sample=True`` sampling with ``temperature``,
        ``top_k``, ``top_p`` (``minitransformer.generation``'s loop and filters). ``num_beams>1``:
        beam search with Hugging Face's semantics: a finished hypothesis scores
        ``sum log p / len**length_penalty`` (len counts generated tokens, eos included);
        ``early_stopping`` is False, True or "never" (see ``minitransformer.beam``).
        Runs in eval mode (no dropout) and restores the previous mode.
        """
        cfg = self.config
        self._check_encoder_inputs(input_ids, attention_mask)
        if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
            raise ValueError(f"num_beams must be an integer >= 1, got {num_beams!r}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
        if max_new_tokens > cfg.max_seq_len:
            raise ValueError(f"max_new_tokens={max_new_tokens} is longer than the decoder accepts "
                             f"(max_seq_len={cfg.max_seq_len})")
        check_sampling_args(max_new_tokens, temperature, top_k, top_p)
        if do_sample and num_beams > 1:
            raise ValueError("do_sample=True works with num_beams=1 only (beam sampling is not implemented)")
        if early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
        eos = cfg.eos_token_id if eos_token_id is None else eos_token_id
        if isinstance(eos, bool) or not isinstance(eos, int) or not 0 <= eos < cfg.vocab_size:
            raise ValueError(f"eos_token_id must be an id in [0, {cfg.vocab_size}), got {eos!r}")

        was_training = self.training
        self.eval()
        try:
            B = input_ids.shape[0]
            memory = self._encode(self.shared(input_ids), attention_mask)  # (B, S, C): the encoder runs once
            memory_bias = None
            if attention_mask is not None and not bool(attention_mask.all()):
                memory_bias = padding_bias(attention_mask, memory.dtype)  # (B, 1, 1, S)
            if num_beams > 1:  # every beam of a row reads the same encoder output
                memory = memory.repeat_interleave(num_beams, dim=0)  # (B*K, S, C)
                if memory_bias is not None:
                    memory_bias = memory_bias.repeat_interleave(num_beams, dim=0)
            # The decoder's position bias for every (query, key) pair we may need, computed once;
            # each step slices the rows of its new queries.
            full_bias = self.decoder_rel_bias(max_new_tokens, max_new_tokens)  # (1, h, L, L)
            cache = DecoderCache(cfg.n_decoder_layers, cross_attention=True) if use_cache else None

            def next_token_logits(sequences: torch.Tensor) -> torch.Tensor:  # (N, t) -> (N, V)
                t = sequences.shape[1]
                past = cache.length if cache is not None else 0
                hidden = self.decode(sequences[:, past:], memory, memory_bias, cache=cache,
                                     self_bias=full_bias[:, :, past:t, :t])  # (N, t - past, C)
                return self.lm_logits(hidden[:, -1:])[:, -1].float()  # only the last position is needed

            def reorder(rows: torch.Tensor) -> None:  # (B*K,): the old row each surviving beam continues
                # Beams never move between inputs, and the cross-attention caches (the encoder
                # output's keys and values) are the same for every beam of an input, so only the
                # self-attention caches need reordering (DecoderCache.reorder would copy both).
                for layer_cache in cache.self_attn:
                    layer_cache.reorder(rows)

            start = torch.full((B, 1), cfg.decoder_start_token_id, dtype=torch.long, device=input_ids.device)
            if num_beams == 1:
                sequences = start

                def step(next_ids: torch.Tensor) -> torch.Tensor:  # (B,) chosen ids -> (B, V) next logits
                    nonlocal sequences
                    sequences = torch.cat([sequences, next_ids[:, None]], dim=1)
                    return next_token_logits(sequences)

                new = decode_loop(step, next_token_logits(start), max_new_tokens, do_sample=do_sample,
                                  temperature=temperature, top_k=top_k, top_p=top_p, eos_token_id=eos,
                                  pad_token_id=cfg.pad_token_id, generator=generator)  # (B, n)
                return torch.cat([start, new], dim=1)
            return beam_search(next_token_logits, start, num_beams, max_new_tokens, eos, cfg.pad_token_id,
                               length_penalty=length_penalty, early_stopping=early_stopping,
                               reorder=reorder if cache is not None else None)
        finally:
            self.train(was_training)

    # ---- vocabulary ----------------------------------------------------------------------------
    def resize_token_embeddings(self, new_vocab_size: int) -> TokenEmbedding:
        """Give the model ``new_vocab_size`` token ids (e.g. after adding tokens to its tokenizer).

        Replaces ``shared`` (the encoder's and decoder's embedding, and v1.0's tied LM head), v1.1's
        own ``lm_head``, and ``self.config`` (a new config). Growing keeps the old rows and starts
        each new one at the mean of the old rows, so a new token first scores the average of the
        old scores (Hewitt 2021; see ``resize_vocab_rows``); shrinking drops the last ids (the pad,
        eos and decoder-start ids must stay inside). Call it before building the optimizer, which
        holds the old tensors. Returns ``shared``, as Hugging Face's ``resize_token_embeddings`` does.
        """
        c = self.config
        V = check_new_vocab_size(new_vocab_size, pad_token_id=c.pad_token_id, eos_token_id=c.eos_token_id,
                             decoder_start_token_id=c.decoder_start_token_id)  # before anything changes
        self.shared.weight = resize_vocab_rows(self.shared.weight, V)  # (V, C)
        self.shared.num_embeddings = V
        if self.lm_head is not None:  # v1.1: an output matrix of its own
            self.lm_head.weight = resize_vocab_rows(self.lm_head.weight, V)  # (V, C)
            self.lm_head.out_features = V
        self.config = replace(c, vocab_size=V)
        return self.shared

    # ---- files ---------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, extra_files: dict[str, str] | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` to ``folder`` (atomically)."""
        from minitransformer.interop.files import save_pretrained

        return save_pretrained(self, self.config, folder, family="t5", extra_files=extra_files)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> T5:
        """Load our run folder, or a local Hugging Face T5 folder (``"model_type": "t5"``). Never downloads.

        Returned in eval mode, like Hugging Face's ``from_pretrained``.
        """
        from minitransformer.interop import t5 as t5_interop
        from minitransformer.interop.files import load_state_dict_checked, load_weights, read_config_json

        data = read_config_json(folder)
        weights = load_weights(folder)
        if data.get("model_type") is not None:
            if data["model_type"] != "t5":
                raise ValueError(f"{folder} holds a Hugging Face {data['model_type']!r} model, not T5")
            config = t5_interop.config_from_hf(data)
            weights = t5_interop.state_dict_from_hf(weights, config)
        else:
            if data.get("family", "t5") != "t5":
                raise ValueError(f"{folder} holds a {data['family']!r} model, not T5")
            config = T5Config.from_dict(data)
        model = cls(config)
        load_state_dict_checked(model, weights)
        return model.eval()
