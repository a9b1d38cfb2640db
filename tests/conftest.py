"""Shared test setup: offline Hugging Face, deterministic hypothesis profile, small helpers."""
from __future__ import annotations

import os

# transformers is only a numerical reference here; never let it try the network
# (a hub lookup takes ~20 s to fail on an offline machine).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# CI: derandomized (same examples every run) with a modest example count; "dev" explores more.
settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# One intra-op thread per test process: the suite runs under `pytest -n 2` on 2 cores, and
# oversubscribed threads make tiny ops ~100x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_thread():
    """Every test starts on one thread, whatever an earlier test (or a run's --threads) set."""
    torch.set_num_threads(1)
    yield
