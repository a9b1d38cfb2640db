"""Checkpoints: nothing pickled, exact round trips, atomic publication, pruning that keeps the best."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from minitransformer.models.config import GPTConfig
from minitransformer.models.gpt import GPT
from minitransformer.optim import make_adamw
from minitransformer.training import checkpoint as ckpt


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=20, max_seq_len=8, d_model=16, n_layers=1, n_heads=2, dropout=0.0))


def take_steps(model: nn.Module, opt: torch.optim.Optimizer, n: int, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        ids = torch.randint(0, 20, (2, 8), generator=g)
        model(ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()


def test_optimizer_state_round_trips_exactly_without_pickle():
    model = tiny_gpt()
    opt = make_adamw(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99))
    take_steps(model, opt, 3)
    tensors, meta = ckpt.optimizer_to_safe(opt)
    json.dumps(meta)  # the non-tensor part is plain JSON
    assert all(isinstance(v, torch.Tensor) for v in tensors.values())

    twin = tiny_gpt(seed=5)
    twin.load_state_dict(model.state_dict())
    twin_opt = make_adamw(twin, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.99))
    ckpt.optimizer_from_safe(twin_opt, tensors, meta)
    a, b = opt.state_dict(), twin_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for k in a["state"][i]:
            assert torch.equal(a["state"][i][k], b["state"][i][k])
    # and both continue identically
    take_steps(model, opt, 2, seed=9)
    take_steps(twin, twin_opt, 2, seed=9)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters(), strict=True))


def test_optimizer_state_for_another_model_is_refused():
    model = tiny_gpt()
    opt = make_adamw(model, lr=1e-2)
    take_steps(model, opt, 1)
    tensors, meta = ckpt.optimizer_to_safe(opt)
    meta["param_groups"][0]["params"] = meta["param_groups"][0]["params"][:-1]
    with pytest.raises(ValueError, match="does not fit"):
        ckpt.optimizer_from_safe(make_adamw(tiny_gpt(), lr=1e-2), tensors, meta)


def test_rng_states_round_trip():
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    tensors, meta = ckpt.rng_to_safe()
    json.dumps(meta)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ckpt.rng_from_safe(tensors, meta)
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


class CompiledLike(nn.Module):
    """Stands in for torch.compile's wrapper (its parameters are named ``_orig_mod.*``)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self._orig_mod = inner


def save(run_dir, step, model, opt, **kw):
    return ckpt.save_checkpoint(run_dir, step, model, model.config if hasattr(model, "config") else
                                model._orig_mod.config, "gpt", opt, {"note": step}, tokenizer_json="{}", **kw)


def test_checkpoint_folder_is_complete_and_loads_back(tmp_path):
    model = tiny_gpt()
    opt = make_adamw(model, lr=1e-2)
    take_steps(model, opt, 2)
    folder = save(tmp_path, 2, CompiledLike(model), opt)
    assert folder.name == "ckpt-000002"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "optimizer.safetensors", "state.json"):
        assert (folder / name).is_file()
        assert (tmp_path / name).is_file() or name in ("optimizer.safetensors", "state.json")
    weights = load_file(str(tmp_path / "model.safetensors"))
    assert weights and not any("_orig_mod" in k for k in weights)
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "ckpt-000002"

    fresh = tiny_gpt(seed=7)
    fresh_opt = make_adamw(fresh, lr=1e-2)
    state, _ = ckpt.load_checkpoint(folder, fresh, fresh_opt)
    assert state["step"] == 2 and state["note"] == 2
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), fresh.parameters(), strict=True))


def test_damaged_checkpoint_pieces_are_refused_and_change_nothing(tmp_path):
    model = tiny_gpt()
    opt = make_adamw(model, lr=1e-2)
    take_steps(model, opt, 1)
    folder = save(tmp_path, 1, model, opt)
    optimizer_file, state_file = folder / "optimizer.safetensors", folder / "state.json"
    good_optimizer, good_state = optimizer_file.read_bytes(), state_file.read_text()

    fresh = tiny_gpt(seed=7)
    before = [p.detach().clone() for p in fresh.parameters()]
    optimizer_file.write_bytes(good_optimizer[:5000])  # cut short, as by a full disk
    with pytest.raises(ValueError, match="optimizer.safetensors is not readable"):
        ckpt.load_checkpoint(folder, fresh, make_adamw(fresh, lr=1e-2))
    assert all(torch.equal(p, q) for p, q in zip(before, fresh.parameters(), strict=True))
    optimizer_file.write_bytes(good_optimizer)
    state_file.write_text(json.dumps({"step": 1}))
    with pytest.raises(ValueError, match="state.json lacks optimizer, rng"):
        ckpt.load_checkpoint(folder, fresh, make_adamw(fresh, lr=1e-2))
    state_file.write_text(good_state)
    ckpt.load_checkpoint(folder, fresh, make_adamw(fresh, lr=1e-2))  # and whole again, it loads


def test_keep_last_k_and_the_best_and_ignore_partial_folders(tmp_path):
    model = tiny_gpt()
    opt = make_adamw(model, lr=1e-2)
    for step in (1, 2, 3, 4, 5):
        save(tmp_path, step, model, opt, keep_last=2, is_best=step == 2)
    steps = [s for s, _ in ckpt.list_checkpoints(tmp_path)]
    assert steps == [2, 4, 5]  # the last two and the best
    assert (tmp_path / "checkpoints" / "best").read_text().strip() == "ckpt-000002"

    # what a SIGKILL can leave behind is never taken for a checkpoint, and is cleaned up
    partial = tmp_path / "checkpoints" / ".tmp-ckpt-000006-123"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"half")
    half_deleted = tmp_path / "checkpoints" / ".trash-ckpt-000003-1"
    half_deleted.mkdir()
    no_state = tmp_path / "checkpoints" / "ckpt-000009"
    no_state.mkdir()
    assert ckpt.latest_checkpoint(tmp_path).name == "ckpt-000005"
    ckpt.clean_partial(tmp_path)
    assert not partial.exists() and not half_deleted.exists()


def test_keep_last_must_be_positive(tmp_path):
    model = tiny_gpt()
    with pytest.raises(ValueError, match="keep_last"):
        save(tmp_path, 1, model, make_adamw(model, lr=1e-2), keep_last=0)
