"""Hugging Face ``transformers`` <-> minitransformer, for the whole model.

``transformers`` is never needed at run time: these functions take a model object (whatever has
``.config`` and ``.state_dict()``) or a plain state dict, and each family's module
(``gpt2.py``, ``gpt_neox.py``, ``bert.py``, ``t5.py`` beside this file) renames and reshapes
tensors one to one.
That one-to-one mapping is what proves our architecture is the published one.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from minitransformer.interop import bert as bert_interop
from minitransformer.interop import gpt2 as gpt2_interop
from minitransformer.interop import gpt_neox as gpt_neox_interop
from minitransformer.interop import t5 as t5_interop
from minitransformer.models.config import BertConfig, GPTConfig, T5Config

# Hugging Face `model_type` -> the interop module that converts it.
_BY_MODEL_TYPE = {"gpt2": gpt2_interop, "gpt_neox": gpt_neox_interop, "bert": bert_interop,
                  "roberta": bert_interop, "electra": bert_interop, "t5": t5_interop}


def _interop_for_config(cfg: Any):
    if isinstance(cfg, GPTConfig):  # a RoPE GPT is a GPT-NeoX; the others convert to GPT-2 (learned only)
        return gpt_neox_interop if cfg.position == "rope" else gpt2_interop
    if isinstance(cfg, BertConfig):
        return bert_interop
    if isinstance(cfg, T5Config):
        return t5_interop
    raise TypeError(f"config must be a GPTConfig, BertConfig or T5Config, got {type(cfg).__name__}")


def from_hf(hf_model_or_state_dict: nn.Module | dict[str, torch.Tensor], config: Any = None) -> nn.Module:
    """A Hugging Face model (GPT2LMHeadModel, GPTNeoXForCausalLM, BertForPreTraining, RobertaForMaskedLM,
    ElectraForPreTraining, T5ForConditionalGeneration) or its state dict -> our model, same weights.

    For a bare state dict, pass our ``config`` (it says which family and shape to build).
    """
    from minitransformer.accounting import build_model

    if isinstance(hf_model_or_state_dict, nn.Module):
        hf_config = hf_model_or_state_dict.config
        model_type = getattr(hf_config, "model_type", None)
        if model_type not in _BY_MODEL_TYPE:
            raise ValueError(f"unsupported Hugging Face model_type {model_type!r}; "
                             f"supported: {', '.join(_BY_MODEL_TYPE)}")
        interop = _BY_MODEL_TYPE[model_type]
        state_dict = hf_model_or_state_dict.state_dict()
        cfg = config if config is not None else interop.config_from_hf(hf_config.to_dict())
        if config is None and interop is bert_interop:
            # BertModel, BertForPreTraining, ElectraForMaskedLM ... differ only in which heads they carry
            cfg = dataclasses.replace(cfg, **bert_interop.heads_in_hf_state_dict(state_dict))
    elif isinstance(hf_model_or_state_dict, dict):
        if config is None:
            raise ValueError("from_hf(state_dict) needs `config=` (a GPTConfig, BertConfig or T5Config) "
                             "to know which model to build")
        cfg, state_dict = config, hf_model_or_state_dict
        interop = _interop_for_config(cfg)
    else:
        raise TypeError("from_hf expects a transformers model or a state dict, "
                        f"got {type(hf_model_or_state_dict).__name__}")
    model = build_model(cfg)
    from minitransformer.interop.files import load_state_dict_checked

    load_state_dict_checked(model, interop.state_dict_from_hf(state_dict, cfg))
    return model


def to_hf_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Our model -> a state dict with Hugging Face names and layouts (load it with ``load_state_dict``).

    One trap: transformers 5 ties a T5's ``lm_head`` to ``shared`` in every model it builds from a
    config, so loading an untied (v1.1) T5's state dict into one writes one matrix over the other.
    ``to_hf_model`` unties it first; use that, or untie ``lm_head`` yourself before loading.
    """
    from minitransformer.interop.files import clean_state_dict, unwrap_model

    model = unwrap_model(model)
    cfg = getattr(model, "config", None)
    return _interop_for_config(cfg).state_dict_to_hf(clean_state_dict(model.state_dict()), cfg)


def to_hf_model(model: nn.Module) -> nn.Module:
    """Our model -> the matching ``transformers`` model holding the same weights, in eval mode.

    ``GPT2LMHeadModel`` (``GPTNeoXForCausalLM`` for a RoPE GPT), ``T5ForConditionalGeneration``, or the
    BERT/RoBERTa/ELECTRA class that has
    our heads (``interop.bert.hf_architecture``). Needs ``transformers`` (a reference, not a runtime need).
    """
    import transformers

    from minitransformer.interop.files import unwrap_model

    model = unwrap_model(model)
    cfg = getattr(model, "config", None)
    kwargs = hf_config_dict(cfg)
    if isinstance(cfg, GPTConfig) and cfg.position == "rope":
        hf = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(**kwargs))
    elif isinstance(cfg, GPTConfig):
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**kwargs))
    elif isinstance(cfg, T5Config):
        hf = transformers.T5ForConditionalGeneration(transformers.T5Config(**kwargs))
        if not cfg.tie_embeddings:  # transformers 5 ties the head to `shared` whatever the config says
            hf.lm_head.weight = nn.Parameter(hf.lm_head.weight.detach().clone())
    else:
        config_class = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig,
                        "electra": transformers.ElectraConfig}[bert_interop.hf_model_type(cfg)]
        hf = getattr(transformers, bert_interop.hf_architecture(cfg))(config_class(**kwargs))
    hf.load_state_dict(to_hf_state_dict(model), strict=True)
    return hf.eval()


def hf_config_dict(model_or_config: Any) -> dict[str, Any]:
    """Our config (or model) -> keyword arguments for the matching ``transformers`` config class."""
    cfg = getattr(model_or_config, "config", model_or_config)
    return _interop_for_config(cfg).config_to_hf(cfg)
