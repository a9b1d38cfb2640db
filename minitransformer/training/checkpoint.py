"""Checkpoints that survive a crash at any moment, and resume a run exactly.

A run folder looks like this::

    DIR/
      config.json  tokenizer.json  model.safetensors     the latest good checkpoint's model
      run.json                                           how the run was set up (for --resume)
      metrics.jsonl  metrics.csv  loss.png  samples.txt  what happened
      data/                                              the token cache (see tokens.py)
      checkpoints/
        ckpt-000200/  model.safetensors config.json tokenizer.json optimizer.safetensors state.json
        ckpt-000300/  ...
        latest  best                                     one line each: a checkpoint folder's name

Writing is crash-safe without any locking, by two rules:

1. A checkpoint folder is written completely under a temporary name (``.tmp-ckpt-000300-<pid>``),
   every file flushed to disk, and only then renamed to ``ckpt-000300``. A rename within one
   folder is atomic: a ``ckpt-*`` folder either does not exist or is complete. The latest
   checkpoint is the ``ckpt-*`` folder with the highest step; the ``latest`` file says the same
   for humans and tools.
2. A single file that changes in place (``DIR/model.safetensors``, the pointer files, metrics
   summaries) is written to a temporary name and moved over the old one with ``os.replace``,
   which is atomic too: a reader sees the old file or the new one, never half of one.

Old checkpoints are deleted by renaming them to ``.trash-*`` first, so a half-deleted folder never
looks like a checkpoint. A SIGKILL can leave ``.tmp-*``/``.trash-*`` folders behind; the next
run removes them.

What a checkpoint holds, so that ``--resume`` continues bit for bit: the model weights
(safetensors, without ``torch.compile``'s ``_orig_mod.`` prefix), the optimizer's moment
estimates (safetensors) and hyper-parameters (JSON), the step (which is also the data position:
batches are drawn from a generator seeded by the step), the random-number states of torch, CUDA,
numpy and Python, the gradient scaler's state and the best validation loss so far. Nothing is
pickled: tensors go to safetensors, everything else to JSON.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from minitransformer.interop.files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_state_dict_checked,
    load_weights,
    save_pretrained,
    unwrap_model,
)

CHECKPOINTS = "checkpoints"
TOKENIZER_NAME = "tokenizer.json"
OPTIMIZER_NAME = "optimizer.safetensors"
STATE_NAME = "state.json"
_CKPT_RE = re.compile(r"^ckpt-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"ckpt-{step:06d}"


# ---- small atomic file helpers -----------------------------------------------------------------

def fsync_path(path: Path) -> None:
    """Flush a file or a folder's entries to disk (folders: best effort, not all systems allow it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old or the new content, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src`` atomically (a hard link where the file system allows it)."""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
        fsync_path(tmp)
    os.replace(tmp, dst)


# ---- optimizer and RNG state without pickle ----------------------------------------------------

def optimizer_to_safe(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and the rest (for JSON)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, state in sd["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_safe(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                        meta: dict[str, Any]) -> None:
    """Inverse of ``optimizer_to_safe``: load the state into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    if len(groups) != len(optimizer.param_groups) or any(
            len(g["params"]) != len(o["params"]) for g, o in zip(groups, optimizer.param_groups, strict=True)):
        raise ValueError("the checkpoint's optimizer state does not fit this model's parameters")
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def rng_to_safe() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The random-number states of torch (CPU and every CUDA device), numpy and Python."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(np_state[1], dtype=np.uint32).astype(np.int64))
    py_version, py_internal, py_gauss = random.getstate()
    meta = {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": [py_version, list(py_internal), py_gauss]}
    return tensors, meta


def rng_from_safe(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    name, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


# ---- checkpoints -------------------------------------------------------------------------------

def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as ``(step, folder)``, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = []
    for item in folder.iterdir():
        m = _CKPT_RE.match(item.name)
        if m and (item / STATE_NAME).is_file():
            found.append((int(m.group(1)), item))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def clean_partial(run_dir: str | os.PathLike) -> None:
    """Remove what an interrupted save or delete left behind (``.tmp-*`` and ``.trash-*``)."""
    folder = Path(run_dir) / CHECKPOINTS
    if folder.is_dir():
        for item in folder.iterdir():
            if item.name.startswith(".") and (".tmp-" in item.name or ".trash-" in item.name):
                shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)


def _read_pointer(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def save_checkpoint(run_dir: str | os.PathLike, step: int, model: nn.Module, model_config: Any, family: str,
                    optimizer: torch.optim.Optimizer, state: dict[str, Any], tokenizer_json: str,
                    extra_tensors: dict[str, torch.Tensor] | None = None, keep_last: int = 2,
                    is_best: bool = False) -> Path:
    """Write ``checkpoints/ckpt-<step>`` completely, then publish it, then prune old ones.

    ``state`` is JSON-able training state (step, best loss, scaler, ...); the RNG states are added
    here. Returns the checkpoint folder. Only one process (rank 0) may call this.
    """
    if keep_last < 1:
        raise ValueError(f"keep_last must be >= 1, got {keep_last}")
    run_dir = Path(run_dir)
    folder = run_dir / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    name = checkpoint_name(step)
    final = folder / name
    if not (final / STATE_NAME).is_file():
        tmp = folder / f".tmp-{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            # config.json + model.safetensors (tied weights once, no wrapper prefixes) + tokenizer.json
            save_pretrained(unwrap_model(model), model_config, tmp, family,
                            extra_files={TOKENIZER_NAME: tokenizer_json})
            from safetensors.torch import save_file

            opt_tensors, opt_meta = optimizer_to_safe(optimizer)
            rng_tensors, rng_meta = rng_to_safe()
            save_file({**opt_tensors, **rng_tensors, **(extra_tensors or {})}, str(tmp / OPTIMIZER_NAME))
            full_state = {**state, "step": step, "optimizer": opt_meta, "rng": rng_meta}
            (tmp / STATE_NAME).write_text(json.dumps(full_state) + "\n", encoding="utf-8")
            for item in tmp.iterdir():
                fsync_path(item)
            fsync_path(tmp)
            os.replace(tmp, final)  # the moment the checkpoint exists, complete
            fsync_path(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    atomic_write_text(folder / "latest", name + "\n")
    if is_best:
        atomic_write_text(folder / "best", name + "\n")
    # The run folder's own copy of the latest model (what `generate`/`from_pretrained` read).
    for file in (CONFIG_NAME, TOKENIZER_NAME, WEIGHTS_NAME):
        atomic_link_or_copy(final / file, run_dir / file)
    fsync_path(run_dir)
    prune_checkpoints(run_dir, keep_last)
    return final


def prune_checkpoints(run_dir: str | os.PathLike, keep_last: int) -> None:
    """Delete all but the ``keep_last`` newest checkpoints and the best one."""
    folder = Path(run_dir) / CHECKPOINTS
    best = _read_pointer(folder / "best")
    found = list_checkpoints(run_dir)
    for _, path in found[:-keep_last]:
        if path.name == best:
            continue
        trash = folder / f".trash-{path.name}-{os.getpid()}"
        os.replace(path, trash)  # from here on it no longer looks like a checkpoint
        shutil.rmtree(trash, ignore_errors=True)


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    restore_rng: bool = True) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Load a checkpoint folder into ``model`` (and ``optimizer``); returns (state, extra tensors).

    Extra tensors are those saved with ``extra_tensors`` (keys not starting with ``state.``/``rng.``).
    """
    from safetensors.torch import load_file

    path = Path(path)
    try:
        state = json.loads((path / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"checkpoint {path} is not readable: {e}") from None
    missing = [k for k in ("step", "optimizer", "rng") if not isinstance(state, dict) or k not in state]
    if missing:
        raise ValueError(f"checkpoint {path}: {STATE_NAME} lacks {', '.join(missing)} (damaged or not a checkpoint)")
    try:  # read every file before changing the model, so a damaged one changes nothing
        tensors = load_file(str(path / OPTIMIZER_NAME))
    except Exception as e:  # noqa: BLE001  (safetensors raises its own error type for a damaged file)
        raise ValueError(f"checkpoint {path}: {OPTIMIZER_NAME} is not readable ({type(e).__name__}: {e})") from None
    load_state_dict_checked(unwrap_model(model), load_weights(path))
    if optimizer is not None:
        optimizer_from_safe(optimizer, {k: v for k, v in tensors.items() if k.startswith("state.")},
                            state["optimizer"])
    if restore_rng:
        rng_from_safe({k: v for k, v in tensors.items() if k.startswith("rng.")}, state["rng"])
    extra = {k: v for k, v in tensors.items() if not k.startswith(("state.", "rng."))}
    return state, extra
