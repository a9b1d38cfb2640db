"""Model folders on disk: ``config.json`` + ``model.safetensors`` (ours or Hugging Face's).

Safe by construction: weights are read from safetensors, or from a PyTorch ``.bin`` only with
``torch.load(weights_only=True)`` (never unpickling arbitrary objects), and a folder is written
to a temporary name and renamed, so a crash never leaves a half-written model behind.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside ``torch.compile`` (``_orig_mod``) and DDP (``module``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def clean_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (``_orig_mod.`` from torch.compile, ``module.`` from DDP) from keys."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith(("_orig_mod.", "module.")):  # any nesting, e.g. DDP around compile
            key = key.split(".", 1)[1]
        out[key.replace("._orig_mod.", ".")] = value
    return out


def read_config_json(folder: str | Path) -> dict[str, Any]:
    """Read ``folder/config.json`` with errors that name the file."""
    path = Path(folder) / CONFIG_NAME
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"model folder not found: {folder}")
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {folder}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable safetensors file: {e}") from None


def _read_tensors_only(path: Path) -> dict[str, torch.Tensor]:
    """A ``.bin`` file through ``torch.load(weights_only=True)``: plain tensors, never other pickled objects."""
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses anything that is not plain tensors
        # torch's own message runs to many lines and suggests weights_only=False, which would run
        # whatever code the file holds: we say what is wrong in our words and never suggest that.
        if isinstance(e, EOFError):
            why = "the file is empty or cut short"
        elif isinstance(e, pickle.UnpicklingError) and "weights only" in str(e).lower():
            why = "it holds Python objects besides tensors, and loading those could run code from the file"
        else:
            why = f"it is not a PyTorch checkpoint ({type(e).__name__})"
        raise ValueError(f"{path} cannot be loaded as tensors only: {why}. We never unpickle anything else; "
                         "convert it to safetensors where you trust it") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


def _read_sharded(folder: Path, index_name: str, read) -> dict[str, torch.Tensor]:
    """A checkpoint split over several files, listed in an index (``{"weight_map": {key: file}}``)."""
    index = folder / index_name
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise TypeError
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{index} is not a checkpoint index (a JSON object with a 'weight_map' of "
                         "tensor name -> shard file)") from None
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        if Path(shard).name != shard:  # only files next to the index, never a path elsewhere
            raise ValueError(f"{index} names the shard {shard!r}; shards must be files in {folder}")
        if not (folder / shard).is_file():
            raise FileNotFoundError(f"{index} lists the shard {shard}, which is not in {folder}")
        tensors = read(folder / shard)
        wanted = [key for key, name in weight_map.items() if name == shard]
        missing = [key for key in wanted if key not in tensors]
        if missing:
            raise ValueError(f"{folder / shard} lacks {len(missing)} tensors its index lists, e.g. {missing[0]}")
        state.update((key, tensors[key]) for key in wanted)
    return state


def load_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors`` (preferred) or ``pytorch_model.bin`` (tensors only) from a folder,
    or the shards that ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json`` list."""
    folder = Path(folder)
    st, binary = folder / WEIGHTS_NAME, folder / "pytorch_model.bin"
    if st.is_file():
        return _read_safetensors(st)
    if (folder / f"{WEIGHTS_NAME}.index.json").is_file():
        return _read_sharded(folder, f"{WEIGHTS_NAME}.index.json", _read_safetensors)
    if binary.is_file():
        return _read_tensors_only(binary)
    if (folder / "pytorch_model.bin.index.json").is_file():
        return _read_sharded(folder, "pytorch_model.bin.index.json", _read_tensors_only)
    raise FileNotFoundError(f"no {WEIGHTS_NAME} or pytorch_model.bin (nor a sharded checkpoint's index) in {folder}")


def save_pretrained(model: nn.Module, config: Any, folder: str | Path, family: str,
                    extra_files: dict[str, str] | None = None) -> Path:
    """Write ``config.json`` (with ``"family"``) and ``model.safetensors`` to ``folder`` atomically.

    Tied weights are stored once (safetensors refuses shared storage): a key whose tensor shares
    memory with an earlier key is dropped, and loading re-ties it. ``extra_files`` maps file names
    to text (e.g. ``tokenizer.json``).
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    model = unwrap_model(model)
    state = clean_state_dict(model.state_dict())
    seen: set[int] = set()
    tensors = {}
    for key, value in state.items():
        ptr = value.untyped_storage().data_ptr()
        if ptr in seen and value.numel():
            continue  # a tied parameter (e.g. the LM head sharing the token embedding)
        seen.add(ptr)
        tensors[key] = value.detach().contiguous().cpu()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "family": family})
        (tmp / CONFIG_NAME).write_text(json.dumps({"family": family, **config.to_dict()}, indent=2) + "\n",
                                       encoding="utf-8")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        if folder.exists():
            # keep what the folder already holds (e.g. a run's metrics) and replace only our files
            for item in tmp.iterdir():
                os.replace(item, folder / item.name)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_state_dict_checked(model: nn.Module, state_dict: dict[str, torch.Tensor],
                            optional_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Load weights strictly, with errors a user can act on.

    Keys of ``model`` starting with one of ``optional_prefixes`` may be absent (e.g. an MLM head
    when loading a bare encoder); they keep their initial values and are returned so the caller
    can say which parts were not loaded. Any other missing key, an unexpected key, a shape
    mismatch or integer values for float weights raise ValueError naming them. Tied parameters
    need only one of their names.
    """
    state_dict = clean_state_dict(state_dict)
    own = model.state_dict()
    # names that share storage with another name (tied weights): either name suffices
    by_ptr: dict[int, list[str]] = {}
    for key, value in own.items():
        by_ptr.setdefault(value.untyped_storage().data_ptr(), []).append(key)
    aliases = {k: names for names in by_ptr.values() if len(names) > 1 for k in names}

    unexpected = sorted(k for k in state_dict if k not in own)
    mismatched = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in state_dict if k in own and state_dict[k].shape != own[k].shape]
    # integers where the model has floats are not weights (copying would pass them off as ones)
    mismatched += [f"{k}: file dtype {state_dict[k].dtype} vs model {own[k].dtype}" for k in state_dict
                   if k in own and own[k].is_floating_point() and not state_dict[k].is_floating_point()]
    missing, optional_missing = [], []
    for key in own:
        if key in state_dict or any(a in state_dict for a in aliases.get(key, [])):
            continue
        (optional_missing if key.startswith(optional_prefixes) else missing).append(key)
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:20])}{' ...' if len(unexpected) > 20 else ''}")
    if mismatched:
        problems.append(f"shape mismatches: {'; '.join(mismatched[:10])}")
    if problems:
        raise ValueError(f"weights do not fit {type(model).__name__}: " + " | ".join(problems))
    with torch.no_grad():
        for key, value in state_dict.items():
            own[key].copy_(value)
            for alias in aliases.get(key, []):
                if alias not in state_dict:
                    own[alias].copy_(value)
    return optional_missing
