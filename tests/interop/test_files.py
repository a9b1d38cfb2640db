"""Model folders on disk: safe save/load round trip, tied weights, strict loading with clear errors."""
from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors import safe_open

from minitransformer.interop.files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    clean_state_dict,
    load_state_dict_checked,
    load_weights,
    read_config_json,
    save_pretrained,
    unwrap_model,
)
from minitransformer.models.config import GPTConfig


class TinyLM(torch.nn.Module):
    """Embedding + block + LM head tied to the embedding, and a persistent buffer."""

    def __init__(self, vocab: int = 11, d: int = 4) -> None:
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, d)
        self.block = torch.nn.Linear(d, d)
        self.norm = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)
        self.head.weight = self.tok.weight  # tied
        self.register_buffer("scale", torch.tensor([2.0]))


def _trained(seed: int = 0) -> TinyLM:
    torch.manual_seed(seed)
    model = TinyLM()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model.scale.fill_(3.0)
    return model


CFG = GPTConfig.preset("tiny")


def test_round_trip(tmp_path):
    model = _trained()
    folder = save_pretrained(model, CFG, tmp_path / "run", family="gpt", extra_files={"tokenizer.json": "{}"})
    assert sorted(p.name for p in folder.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME, "tokenizer.json"])
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folder left behind

    config = read_config_json(folder)
    assert config.pop("family") == "gpt"
    assert GPTConfig.from_dict(config) == CFG

    fresh = TinyLM()
    assert load_state_dict_checked(fresh, load_weights(folder)) == []
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_tied_weights_stored_once_and_retied_on_load(tmp_path):
    model = _trained()
    save_pretrained(model, CFG, tmp_path / "m", family="gpt")
    with safe_open(str(tmp_path / "m" / WEIGHTS_NAME), framework="pt") as f:
        keys = set(f.keys())
        assert f.metadata()["family"] == "gpt"
    assert ("tok.weight" in keys) != ("head.weight" in keys)  # exactly one name of the tied pair
    assert keys | {"tok.weight", "head.weight"} == set(model.state_dict())

    fresh = TinyLM()
    load_state_dict_checked(fresh, load_weights(tmp_path / "m"))
    assert fresh.head.weight is fresh.tok.weight  # still one parameter
    assert torch.equal(fresh.head.weight, model.tok.weight)


def test_either_name_of_a_tied_pair_suffices(tmp_path):
    model = _trained()
    state = model.state_dict()
    for dropped in ("tok.weight", "head.weight"):
        fresh = TinyLM()
        load_state_dict_checked(fresh, {k: v for k, v in state.items() if k != dropped})
        assert torch.equal(fresh.tok.weight, model.tok.weight) and fresh.head.weight is fresh.tok.weight


def test_saving_over_a_run_folder_keeps_other_files(tmp_path):
    folder = tmp_path / "run"
    save_pretrained(_trained(0), CFG, folder, family="gpt")
    (folder / "metrics.jsonl").write_text('{"step": 1}\n')
    newer = _trained(1)
    save_pretrained(newer, CFG, folder, family="gpt")
    assert (folder / "metrics.jsonl").read_text() == '{"step": 1}\n'
    fresh = TinyLM()
    load_state_dict_checked(fresh, load_weights(folder))
    assert torch.equal(fresh.block.weight, newer.block.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_failed_save_leaves_nothing_behind(tmp_path):
    class BrokenConfig:
        def to_dict(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_pretrained(_trained(), BrokenConfig(), tmp_path / "run", family="gpt")
    assert list(tmp_path.iterdir()) == []


# ---- strict loading: errors name what is wrong -------------------------------------------------------
def test_missing_and_unexpected_keys_are_named():
    state = _trained().state_dict()
    del state["block.bias"]
    state["block.extra"] = torch.zeros(1)
    with pytest.raises(ValueError) as e:
        load_state_dict_checked(TinyLM(), state)
    message = str(e.value)
    assert "missing keys: block.bias" in message and "unexpected keys: block.extra" in message
    assert "TinyLM" in message


def test_shape_mismatch_is_named_with_both_shapes():
    state = TinyLM(vocab=13).state_dict()
    with pytest.raises(ValueError, match=r"tok\.weight: file \(13, 4\) vs model \(11, 4\)"):
        load_state_dict_checked(TinyLM(vocab=11), state)


def test_integer_values_for_float_weights_are_refused():
    """A file of integers is not weights, even of the right shape (copying would truncate silently)."""
    state = {k: v.round().long() for k, v in TinyLM().state_dict().items()}
    with pytest.raises(ValueError, match=r"tok\.weight: file dtype torch\.int64 vs model torch\.float32"):
        load_state_dict_checked(TinyLM(), state)


def test_a_failed_load_changes_nothing():
    model = _trained(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = _trained(1).state_dict()
    state["oops"] = torch.zeros(1)
    with pytest.raises(ValueError):
        load_state_dict_checked(model, state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_optional_prefixes_may_be_absent():
    model = _trained()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("norm.")}
    fresh = TinyLM()
    assert sorted(load_state_dict_checked(fresh, state, optional_prefixes=("norm.",))) == ["norm.bias", "norm.weight"]
    assert torch.equal(fresh.block.weight, model.block.weight)
    with pytest.raises(ValueError, match="missing keys: norm.weight, norm.bias"):
        load_state_dict_checked(TinyLM(), state)


# ---- wrappers -----------------------------------------------------------------------------------------
def test_clean_state_dict_strips_wrapper_prefixes():
    t = torch.zeros(1)
    cleaned = clean_state_dict({"_orig_mod.a.weight": t, "module.b": t, "module.module.c": t,
                                "_orig_mod.module.d": t, "e._orig_mod.f": t, "g.module_h": t, "modules.i": t})
    assert list(cleaned) == ["a.weight", "b", "c", "d", "e.f", "g.module_h", "modules.i"]


def test_clean_state_dict_strips_ddp_around_compile():
    """DDP(torch.compile(model)) — nanoGPT's order — saves keys as ``module._orig_mod.<name>``."""
    cleaned = clean_state_dict({"module._orig_mod.tok.weight": torch.zeros(1)})
    assert list(cleaned) == ["tok.weight"]


def test_wrapped_model_saves_clean_keys(tmp_path):
    class Compiled(torch.nn.Module):  # stands in for torch.compile's OptimizedModule
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    model = _trained()
    wrapped = Compiled(model)
    assert unwrap_model(wrapped) is model
    assert all(k.startswith("_orig_mod.") for k in wrapped.state_dict())
    save_pretrained(wrapped, CFG, tmp_path / "m", family="gpt")
    fresh = TinyLM()
    load_state_dict_checked(fresh, load_weights(tmp_path / "m"))
    assert torch.equal(fresh.block.weight, model.block.weight)
    # a checkpoint saved from the wrapper loads into a plain model
    load_state_dict_checked(TinyLM(), wrapped.state_dict())


# ---- bad files: clear errors that name the file -------------------------------------------------------
def test_corrupt_safetensors_names_the_file(tmp_path):
    save_pretrained(_trained(), CFG, tmp_path / "m", family="gpt")
    path = tmp_path / "m" / WEIGHTS_NAME
    data = path.read_bytes()
    for broken in (b"not a safetensors file", data[: len(data) // 2], b""):
        path.write_bytes(broken)
        with pytest.raises(ValueError, match=WEIGHTS_NAME):
            load_weights(tmp_path / "m")


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_config_json(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=CONFIG_NAME):
        read_config_json(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=WEIGHTS_NAME):
        load_weights(tmp_path / "empty")


def test_bad_config_json_names_the_file(tmp_path):
    (tmp_path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=CONFIG_NAME):
        read_config_json(tmp_path)
    (tmp_path / CONFIG_NAME).write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="JSON object"):
        read_config_json(tmp_path)
    (tmp_path / CONFIG_NAME).write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=CONFIG_NAME):
        read_config_json(tmp_path)


def test_pytorch_bin_tensors_load(tmp_path):
    state = _trained().state_dict()
    torch.save(state, tmp_path / "pytorch_model.bin")
    loaded = load_weights(tmp_path)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


class _Evil:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Evil.target),))


def test_pickle_payload_in_bin_is_refused_not_run(tmp_path):
    _Evil.target = str(tmp_path / "pwned")
    with open(tmp_path / "pytorch_model.bin", "wb") as f:
        pickle.dump({"w": torch.zeros(1), "x": _Evil()}, f, protocol=2)
    with pytest.raises(ValueError, match="pytorch_model.bin") as refused:
        load_weights(tmp_path)
    assert not (tmp_path / "pwned").exists()
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and "weights_only=False" not in message  # one line, no risky advice


def test_refusals_of_bin_files_say_what_is_wrong(tmp_path):
    for content, why in ((b"", "empty or cut short"), (b"hello, not a checkpoint", "not a PyTorch checkpoint")):
        (tmp_path / "pytorch_model.bin").write_bytes(content)
        with pytest.raises(ValueError, match=why) as refused:
            load_weights(tmp_path)
        assert len(str(refused.value).splitlines()) == 1


def test_sharded_checkpoints_load_like_one_file(tmp_path):
    """transformers' save_pretrained(max_shard_size=...) writes an index and several shards."""
    import transformers

    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=61, n_positions=16, n_embd=24, n_layer=2,
                                                              n_head=3))
    hf.save_pretrained(tmp_path / "st", max_shard_size="20KB")
    assert (tmp_path / "st" / "model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "st").glob("model-*.safetensors"))) > 1
    expected = hf.state_dict()
    loaded = load_weights(tmp_path / "st")
    assert all(torch.equal(loaded[k], expected[k]) for k in loaded) and "transformer.h.1.mlp.c_fc.weight" in loaded
    from minitransformer.models.gpt import GPT

    ids = torch.randint(0, 61, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(GPT.from_pretrained(tmp_path / "st")(ids).logits, hf.eval()(ids).logits,
                                   atol=1e-5, rtol=0)
    # the same shards as .bin files (tensors only)
    folder = tmp_path / "bin"
    folder.mkdir()
    index = json.loads((tmp_path / "st" / "model.safetensors.index.json").read_text())
    for shard in set(index["weight_map"].values()):
        torch.save(load_weights_file(tmp_path / "st" / shard), folder / shard.replace(".safetensors", ".bin"))
    index["weight_map"] = {k: v.replace(".safetensors", ".bin") for k, v in index["weight_map"].items()}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    assert load_weights(folder).keys() == loaded.keys()
    # an index may only name files next to it
    index["weight_map"]["lm_head.weight"] = "../elsewhere.bin"
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="must be files in"):
        load_weights(folder)


def load_weights_file(path):
    from safetensors.torch import load_file

    return load_file(str(path))
