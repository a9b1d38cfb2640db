"""`minitransformer bench`: the reference table and the scaling breakdown (sizes, not speed)."""
from __future__ import annotations

import minitransformer as mt
from minitransformer import bench
from minitransformer.cli import main


def test_reference_table_uses_exact_counts_and_computed_disk(tmp_path):
    rows = bench.reference_table(measure_up_to=0)  # nothing written to disk: all computed
    assert [r.name for r in rows] == [name for name, *_ in bench.REFERENCE_MODELS]
    for row, (_, cfg, *_) in zip(rows, bench.REFERENCE_MODELS, strict=True):
        n = mt.count_parameters(cfg)
        assert row.parameters == n
        assert row.disk_fp32_gb == 4 * n / 1e9 and not row.disk_measured
        assert row.training_mixed_gb > row.inference_fp16_gb > 0
    by_name = {r.name: r.parameters for r in rows}
    assert by_name["GPT-3 175B"] == 174_604_259_328 and by_name["T5-11B"] == 11_307_321_344


def test_measured_disk_is_the_safetensors_file(tmp_path):
    cfg = mt.GPTConfig.preset("tiny")
    size = bench.measure_disk_bytes(cfg)
    n = mt.count_parameters(cfg)
    # float32 weights (the tied head stored once) plus a small JSON header
    assert 4 * n < size < 4 * n + 16_384


def test_scaling_breakdown_adds_up():
    for name in ("tiny", "gpt2-117m", "gpt3-175b"):
        parts = bench.parameter_breakdown(mt.GPTConfig.preset(name))
        assert sum(parts.values()) == mt.count_parameters(mt.GPTConfig.preset(name))
    big = bench.parameter_breakdown(mt.GPTConfig.preset("gpt3-175b"))
    assert big["embeddings"] < 0.01 * sum(big.values())  # at scale the layers are everything


def test_cli_writes_table_and_plot(tmp_path, capsys):
    assert main(["bench", "scaling", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "scaling.md").read_text().startswith("| GPT shape")
    assert (tmp_path / "scaling.png").stat().st_size > 1000
    assert "gpt3-175b" in capsys.readouterr().out
