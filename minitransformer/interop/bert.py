"""BERT, RoBERTa and ELECTRA: Hugging Face ``transformers`` checkpoints <-> ``minitransformer.Bert``.

All three are one architecture for us (``BertConfig`` flags); Hugging Face gives each its own
class and key names. The mapping is one tensor to one tensor, except that HF keeps separate
query/key/value projections where we keep one fused ``qkv`` (concatenated along the output
dimension, in that order), and HF lists tied weights (the MLM decoder = the word embedding) under
a second name, which we do not store.

Which HF flavour a ``BertConfig`` is (``hf_model_type``): RoBERTa if ``position_offset > 0``,
ELECTRA if it has a discriminator head or ``embedding_size != d_model``, BERT otherwise. A model
with heads uses the prefixed names of ``BertForPreTraining`` / ``RobertaForMaskedLM`` /
``ElectraForPreTraining`` (``bert.encoder...``, ``cls.predictions...``); one without any head
(only an encoder, maybe a pooler) uses the bare names of ``BertModel`` (``encoder...``).
"""
from __future__ import annotations

from typing import Any

import torch

from minitransformer.models.config import BertConfig

MODEL_TYPES = ("bert", "roberta", "electra")

# HF's activation names <-> ours
_ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
_ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}

# Names inside one encoder layer, HF -> ours (the fused q/k/v are handled on their own).
_LAYER_NAMES = {
    "attention.output.dense": "self_attn.out",
    "attention.output.LayerNorm": "self_attn_norm",
    "intermediate.dense": "ffn.fc_in",
    "output.dense": "ffn.fc_out",
    "output.LayerNorm": "ffn_norm",
}
# Names of the MLM head, per flavour: (dense, LayerNorm, output bias, tied decoder weight, tied decoder bias)
_MLM_NAMES = {
    "bert": ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias",
             "cls.predictions.decoder.weight", "cls.predictions.decoder.bias"),
    "roberta": ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder.weight",
                "lm_head.decoder.bias"),
    # ELECTRA's generator: its lm_head is a Linear whose weight is tied and whose bias is its own
    "electra": ("generator_predictions.dense", "generator_predictions.LayerNorm", "generator_lm_head.bias",
                "generator_lm_head.weight", None),
}
# Buffers (not weights) that some checkpoints carry; ignored on import.
_BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")


def hf_model_type(cfg: BertConfig) -> str:
    """Which Hugging Face family a config corresponds to: "roberta", "electra" or "bert"."""
    if cfg.position_offset > 0:
        return "roberta"
    if cfg.discriminator_head or cfg.embedding_size != cfg.d_model:
        return "electra"
    return "bert"


def hf_architecture(cfg: BertConfig) -> str:
    """The ``transformers`` class whose weights match this config (ValueError if none does)."""
    kind = hf_model_type(cfg)
    if kind == "bert":
        if cfg.mlm_head and cfg.nsp_head:
            return "BertForPreTraining"
        if cfg.mlm_head:
            return "BertForMaskedLM"
        if cfg.nsp_head:
            return "BertForNextSentencePrediction"
        return "BertModel"
    if kind == "roberta":
        if cfg.nsp_head or cfg.discriminator_head:
            raise ValueError("RoBERTa has no NSP or discriminator head in transformers")
        return "RobertaForMaskedLM" if cfg.mlm_head else "RobertaModel"
    if cfg.pooler or cfg.nsp_head:
        raise ValueError("ELECTRA has no pooler or NSP head in transformers (set pooler=False, nsp_head=False)")
    if cfg.mlm_head and cfg.discriminator_head:
        raise ValueError("transformers has no ELECTRA class with both a generator (MLM) head and a "
                         "discriminator head; convert the generator and the discriminator separately")
    if cfg.discriminator_head:
        return "ElectraForPreTraining"
    return "ElectraForMaskedLM" if cfg.mlm_head else "ElectraModel"


# ---- configs --------------------------------------------------------------------------------
def config_from_hf(hf_config: dict[str, Any]) -> BertConfig:
    """A ``transformers`` BERT/RoBERTa/ELECTRA config (``config.to_dict()`` or config.json) -> ``BertConfig``.

    Heads follow ``architectures`` when it is given, else the pretraining class of the family
    (``BertForPreTraining``, ``RobertaForMaskedLM``, ``ElectraForPreTraining``).
    """
    if not isinstance(hf_config, dict):
        raise TypeError(f"config_from_hf expects a dict, got {type(hf_config).__name__}")
    kind = hf_config.get("model_type")
    if kind not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {', '.join(MODEL_TYPES)}, got {kind!r}")
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings")
    missing = [k for k in required if k not in hf_config]
    if missing:
        raise ValueError(f"the {kind} config lacks {', '.join(missing)}")
    if hf_config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"only absolute position embeddings are supported, got "
                         f"position_embedding_type={hf_config['position_embedding_type']!r}")
    if hf_config.get("is_decoder") or hf_config.get("add_cross_attention"):
        raise ValueError("BERT used as a decoder (is_decoder / add_cross_attention) is not supported")
    act = hf_config.get("hidden_act", "gelu")
    if act not in _ACT_FROM_HF:
        raise ValueError(f"unsupported hidden_act {act!r}; supported: {', '.join(_ACT_FROM_HF)}")
    pad = hf_config.get("pad_token_id", 1 if kind == "roberta" else 0)
    if kind == "roberta" and (isinstance(pad, bool) or not isinstance(pad, int)):
        raise ValueError(f"a RoBERTa config needs an integer pad_token_id (positions are numbered from "
                         f"pad_token_id + 1), got {pad!r}")
    common = dict(
        vocab_size=hf_config["vocab_size"], d_model=hf_config["hidden_size"], n_layers=hf_config["num_hidden_layers"],
        n_heads=hf_config["num_attention_heads"], d_ff=hf_config["intermediate_size"],
        type_vocab_size=hf_config.get("type_vocab_size", 2), dropout=hf_config.get("hidden_dropout_prob", 0.1),
        activation=_ACT_FROM_HF[act], norm_eps=hf_config.get("layer_norm_eps", 1e-12), pad_token_id=pad,
    )
    archs = hf_config.get("architectures") or []
    arch = archs[0] if archs else None
    if kind == "bert":
        heads = {"BertForMaskedLM": (False, True, False), "BertForNextSentencePrediction": (True, False, True),
                 "BertForPreTraining": (True, True, True), None: (True, True, True)}.get(arch, (True, False, False))
        pooler, mlm, nsp = heads
        return BertConfig(**common, max_seq_len=hf_config["max_position_embeddings"], pooler=pooler,
                          mlm_head=mlm, nsp_head=nsp)
    if kind == "roberta":
        offset = pad + 1  # RoBERTa numbers real tokens from padding_idx + 1
        mlm = arch in (None, "RobertaForMaskedLM")
        return BertConfig(**common, max_seq_len=hf_config["max_position_embeddings"] - offset, position_offset=offset,
                          pooler=not mlm, mlm_head=mlm, nsp_head=False, mlm_head_activation="gelu")
    mlm, disc = {"ElectraForMaskedLM": (True, False), "ElectraForPreTraining": (False, True),
                 None: (False, True)}.get(arch, (False, False))
    return BertConfig(**common, max_seq_len=hf_config["max_position_embeddings"],
                      embedding_size=hf_config.get("embedding_size", hf_config["hidden_size"]), pooler=False,
                      mlm_head=mlm, nsp_head=False, discriminator_head=disc, mlm_head_activation="gelu")


def config_to_hf(cfg: BertConfig) -> dict[str, Any]:
    """``BertConfig`` -> keyword arguments for ``transformers.BertConfig`` / ``RobertaConfig`` / ``ElectraConfig``.

    Which class: ``hf_model_type(cfg)``; the ``architectures`` entry names the model class.
    """
    kind = hf_model_type(cfg)
    if cfg.activation not in _ACT_TO_HF:
        raise ValueError(f"activation {cfg.activation!r} has no transformers equivalent for BERT")
    head_act = "gelu" if kind in ("roberta", "electra") else cfg.activation  # what transformers' MLM head uses
    if cfg.mlm_head and (cfg.mlm_head_activation or cfg.activation) != head_act:
        raise ValueError(f"transformers' {kind} MLM head uses {head_act!r}; this config's MLM head uses "
                         f"{cfg.mlm_head_activation or cfg.activation!r}, which it cannot represent")
    if kind == "roberta" and cfg.position_offset != cfg.pad_token_id + 1:
        raise ValueError(f"RoBERTa numbers positions from pad_token_id + 1: position_offset must be "
                         f"{cfg.pad_token_id + 1}, got {cfg.position_offset}")
    kwargs: dict[str, Any] = dict(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads, intermediate_size=cfg.d_ff, hidden_act=_ACT_TO_HF[cfg.activation],
        hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
        max_position_embeddings=cfg.max_seq_len + cfg.position_offset, type_vocab_size=cfg.type_vocab_size,
        layer_norm_eps=cfg.norm_eps, pad_token_id=cfg.pad_token_id, tie_word_embeddings=True,
        architectures=[hf_architecture(cfg)],
    )
    if kind == "electra":
        kwargs["embedding_size"] = cfg.embedding_size
    return kwargs


# ---- state dicts ----------------------------------------------------------------------------
def heads_in_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, bool]:
    """Which heads a Hugging Face state dict has weights for, as ``BertConfig`` flags."""
    mlm_keys = {f"{names[0]}.weight" for names in _MLM_NAMES.values()}
    return {
        "pooler": any(k.endswith("pooler.dense.weight") for k in sd),
        "mlm_head": any(k in mlm_keys for k in sd),
        "nsp_head": "cls.seq_relationship.weight" in sd,
        "discriminator_head": "discriminator_predictions.dense.weight" in sd,
    }


def _flavour_of_keys(sd: dict[str, torch.Tensor], cfg: BertConfig) -> tuple[str, str]:
    """(model type, prefix of the encoder's keys) of an HF state dict; the config decides when keys cannot."""
    kind = hf_model_type(cfg)
    for candidate in MODEL_TYPES:
        if any(k.startswith(f"{candidate}.") for k in sd):
            return candidate, f"{candidate}."
    if any(k.startswith(("generator_", "discriminator_predictions.", "embeddings_project.")) for k in sd):
        kind = "electra"
    return kind, ""


def _name_pairs(cfg: BertConfig, kind: str, base: str) -> list[tuple[str, str]]:
    """(HF name, our name) for every tensor mapped one to one (not q/k/v, not tied copies)."""
    pairs = [(f"{base}embeddings.word_embeddings.weight", "embeddings.word.weight"),
             (f"{base}embeddings.position_embeddings.weight", "embeddings.position.weight"),
             (f"{base}embeddings.token_type_embeddings.weight", "embeddings.segment.weight")]
    params = ("weight", "bias")
    pairs += [(f"{base}embeddings.LayerNorm.{p}", f"embeddings.norm.{p}") for p in params]
    if cfg.embedding_size != cfg.d_model:
        pairs += [(f"{base}embeddings_project.{p}", f"embed_proj.{p}") for p in params]
    for i in range(cfg.n_layers):
        for hf, ours in _LAYER_NAMES.items():
            pairs += [(f"{base}encoder.layer.{i}.{hf}.{p}", f"layers.{i}.{ours}.{p}") for p in params]
    if cfg.pooler:
        pairs += [(f"{base}pooler.dense.{p}", f"pooler.dense.{p}") for p in params]
    if cfg.mlm_head:
        dense, norm, bias, _, _ = _MLM_NAMES[kind]
        pairs += [(f"{dense}.{p}", f"mlm_head.dense.{p}") for p in params]
        pairs += [(f"{norm}.{p}", f"mlm_head.norm.{p}") for p in params]
        pairs.append((bias, "mlm_head.bias"))
    if cfg.nsp_head:
        pairs += [(f"cls.seq_relationship.{p}", f"nsp_head.classifier.{p}") for p in params]
    if cfg.discriminator_head:
        pairs += [(f"discriminator_predictions.dense.{p}", f"discriminator_head.dense.{p}") for p in params]
        pairs += [(f"discriminator_predictions.dense_prediction.{p}", f"discriminator_head.out.{p}") for p in params]
    return pairs


def _qkv_names(base: str, i: int, p: str) -> list[str]:
    return [f"{base}encoder.layer.{i}.attention.self.{n}.{p}" for n in ("query", "key", "value")]


def state_dict_from_hf(sd: dict[str, torch.Tensor], cfg: BertConfig) -> dict[str, torch.Tensor]:
    """Hugging Face names -> ours, tensors unchanged (q, k, v concatenated into ``qkv``).

    Accepts the prefixed names of the pretraining classes and the bare names of ``BertModel`` /
    ``RobertaModel`` / ``ElectraModel``. Raises ValueError naming missing keys (HF names) and keys
    it does not know; shapes are checked when the result is loaded into the model.
    """
    kind, base = _flavour_of_keys(sd, cfg)
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    used: set[str] = set()

    def take(name: str) -> torch.Tensor | None:
        used.add(name)
        if name not in sd:
            missing.append(name)
            return None
        return sd[name]

    mlm_bias_alias = _MLM_NAMES[kind][4]
    for hf, ours in _name_pairs(cfg, kind, base):
        if cfg.mlm_head and ours == "mlm_head.bias" and hf not in sd and mlm_bias_alias in sd:
            hf = mlm_bias_alias  # some checkpoints store the output bias only under the decoder's name
        tensor = take(hf)
        if tensor is not None:
            out[ours] = tensor
    for i in range(cfg.n_layers):
        for p in ("weight", "bias"):
            parts = [take(n) for n in _qkv_names(base, i, p)]
            if all(t is not None for t in parts):
                out[f"layers.{i}.self_attn.qkv.{p}"] = torch.cat(parts, dim=0)  # (3C, C) / (3C,)
    if cfg.mlm_head:  # the decoder's tied copies: accepted, checked, not stored
        _, _, _, tied_weight, tied_bias = _MLM_NAMES[kind]
        used.update(n for n in (tied_weight, tied_bias) if n)
        word = sd.get(f"{base}embeddings.word_embeddings.weight")
        if tied_weight in sd and word is not None and not torch.equal(sd[tied_weight], word):
            raise ValueError(f"{tied_weight} differs from the word embeddings; minitransformer's MLM head "
                             "always ties them, so an untied decoder cannot be loaded")
    unexpected = sorted(k for k in sd if k not in used and not k.endswith(_BUFFER_SUFFIXES))
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:20])}{' ...' if len(unexpected) > 20 else ''}")
    if problems:
        raise ValueError(f"the {kind} weights do not fit this BertConfig "
                         f"(pooler={cfg.pooler}, mlm_head={cfg.mlm_head}, nsp_head={cfg.nsp_head}, "
                         f"discriminator_head={cfg.discriminator_head}, n_layers={cfg.n_layers}): "
                         + " | ".join(problems))
    return out


def state_dict_to_hf(sd: dict[str, torch.Tensor], cfg: BertConfig) -> dict[str, torch.Tensor]:
    """Our names -> Hugging Face names (see the module docstring for which class's), ``qkv`` split in three.

    The tied decoder weight (and bias, where HF ties it) appear under their HF names too, as the
    same tensors, so ``hf_model.load_state_dict(result)`` works with ``strict=True``.
    """
    kind = hf_model_type(cfg)
    has_heads = cfg.mlm_head or cfg.nsp_head or cfg.discriminator_head
    base = f"{kind}." if has_heads else ""
    pairs = _name_pairs(cfg, kind, base)
    needed = [ours for _, ours in pairs] + [f"layers.{i}.self_attn.qkv.{p}" for i in range(cfg.n_layers)
                                             for p in ("weight", "bias")]
    missing = [k for k in needed if k not in sd]
    if missing:
        raise ValueError(f"state dict lacks {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    out = {hf: sd[ours] for hf, ours in pairs}
    for i in range(cfg.n_layers):
        for p in ("weight", "bias"):
            q, k, v = sd[f"layers.{i}.self_attn.qkv.{p}"].chunk(3, dim=0)
            for name, tensor in zip(_qkv_names(base, i, p), (q, k, v), strict=True):
                out[name] = tensor.clone()  # its own storage (safetensors refuses overlapping views)
    if cfg.mlm_head:
        _, _, _, tied_weight, tied_bias = _MLM_NAMES[kind]
        out[tied_weight] = sd["embeddings.word.weight"]
        if tied_bias:
            out[tied_bias] = sd["mlm_head.bias"]
    return out
