"""The GPU and Apple-GPU branches of training, checked on the CPU with stand-ins (CI has no GPU):
the autocast dtype a GPU gets, which GPU each torchrun process takes, and metrics leaving the device."""
from __future__ import annotations

import pytest
import torch

from minitransformer.training import distributed
from minitransformer.training.batches import _pair
from minitransformer.training.config import TrainConfig
from minitransformer.training.trainer import Trainer, resolve_dtype


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((8, 0), torch.bfloat16),
                                                  ((9, 0), torch.bfloat16)])
def test_auto_dtype_is_fp16_before_ampere(monkeypatch, capability, expected):
    """A T4 (7.5) or V100 (7.0) runs bf16 only emulated (torch.cuda.is_bf16_supported() still says yes)."""
    monkeypatch.setattr(torch.version, "hip", None)
    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: asked.append(device) or capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # what torch answers on a T4
    assert resolve_dtype("auto", torch.device("cuda", 1)) is expected
    assert asked == [torch.device("cuda", 1)]  # the process's own GPU, not the current one
    assert resolve_dtype("auto", torch.device("cpu")) is None


def test_metrics_leave_the_device_before_float64():
    """MPS has no float64: the (sum, count) pair must move to the CPU before the cast. Stand-in: a tensor
    that refuses float64 until it is on the CPU, like an MPS tensor."""
    class NoFloat64(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types_, args=(), kwargs=None):
            if func is torch.Tensor.cpu:
                return torch.Tensor.cpu(args[0].as_subclass(torch.Tensor))
            if func is torch.Tensor.double:
                raise TypeError("Cannot convert a MPS Tensor to float64 dtype")
            return super().__torch_function__(func, types_, args, kwargs or {})

    pair = _pair(torch.tensor(3.5).as_subclass(NoFloat64), 2)
    assert pair.dtype == torch.float64 and pair.tolist() == [3.5, 2.0]


@pytest.fixture
def torchrun_rank_1(monkeypatch):
    """The environment torchrun gives the second of two processes on one machine, with 2 fake GPUs."""
    for name, value in dict(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1",
                            MASTER_PORT="29999").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    pinned: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "set_device", pinned.append)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kw: pinned.append(kw["backend"]))
    return pinned


def test_each_torchrun_process_uses_the_gpu_its_model_is_on(torchrun_rank_1):
    info = distributed.init_distributed(torch.device("cuda", 1))
    assert torchrun_rank_1 == [torch.device("cuda", 1), "nccl"]
    assert (info.rank, info.world_size, info.local_rank) == (1, 2, 1)


@pytest.mark.parametrize("device, local_rank, words", [("cuda:0", "1", "every process on one GPU"),
                                                       ("cuda", "2", "no GPU of its own")])
def test_torchrun_refuses_processes_that_would_share_a_gpu(torchrun_rank_1, monkeypatch, tmp_path,
                                                            device, local_rank, words):
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    trainer = Trainer(TrainConfig(family="gpt", device=device), tmp_path / "run")
    with pytest.raises(ValueError, match=words):
        trainer.setup()
    assert torchrun_rank_1 == []  # refused before any GPU or process group was touched

