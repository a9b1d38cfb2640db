"""T5 speed on CPU: training steps and generation, ours vs transformers' T5ForConditionalGeneration.

    python benchmarks/bench_t5.py train       # tiny and t5-small shapes, encoder 128 / decoder 32 tokens
    python benchmarks/bench_t5.py generate    # t5-small shape: greedy and 4-beam search
    python benchmarks/bench_t5.py all
    python benchmarks/bench_t5.py lookup      # ours only: one lookup of the shared embedding vs two dense ones

Both models hold the same random weights (ours converted to transformers' names) and see the same
batches; they run alternately in one process, round after round, so both share whatever else the
machine is doing, and each figure is the median over rounds. Training tokens are encoder plus
decoder tokens; a step is forward, backward and one AdamW step (the same fused AdamW for both).
Generation tokens are new tokens (batch x generated length); both runs must return the same ids.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from minitransformer.flops import measure_matmul_peak, t5_flops_per_step  # noqa: E402
from minitransformer.interop import t5 as t5_interop  # noqa: E402
from minitransformer.models.config import T5Config  # noqa: E402
from minitransformer.models.t5 import T5  # noqa: E402

ENC_LEN, DEC_LEN = 128, 32
TRAIN_BATCH = {"tiny": 16, "t5-small": 4}


def hf_twin(ours: T5, attn: str = "sdpa"):
    """transformers' T5ForConditionalGeneration with exactly our weights."""
    import transformers

    hf_cfg = transformers.T5Config(**t5_interop.config_to_hf(ours.config))
    hf = transformers.T5ForConditionalGeneration._from_config(hf_cfg, attn_implementation=attn)
    hf.load_state_dict(t5_interop.state_dict_to_hf(ours.state_dict(), ours.config))
    return hf


def alternate(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each function, the functions taking turns round after round."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def random_pairs(cfg: T5Config, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Four fixed (input ids (B, ENC_LEN), labels (B, DEC_LEN)) batches of random tokens."""
    g = torch.Generator().manual_seed(0)
    return [(torch.randint(2, cfg.vocab_size, (batch, ENC_LEN), generator=g),
             torch.randint(2, cfg.vocab_size, (batch, DEC_LEN), generator=g)) for _ in range(4)]


def training_run(loss_of, model: torch.nn.Module, data: list, steps: int):
    """A function that runs ``steps`` training steps (forward, backward, fused AdamW) over ``data``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def run() -> None:
        for i in range(steps):
            x, y = data[i % len(data)]
            loss_of(x, y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    return run


def bench_train(preset: str, steps: int, rounds: int, dropout: float = 0.0, batch: int | None = None) -> float:
    cfg = T5Config.preset(preset, dropout=dropout)
    batch = batch or TRAIN_BATCH[preset]
    torch.manual_seed(0)
    ours = T5(cfg).train()
    hf = hf_twin(ours).train()
    data = random_pairs(cfg, batch)
    fns = {"ours": training_run(lambda x, y: ours(x, labels=y).loss, ours, data, steps),
           "hf": training_run(lambda x, y: hf(input_ids=x, labels=y).loss, hf, data, steps)}
    alternate(fns, 1)  # warm-up: allocator, kernels, optimizer state
    flops = steps * t5_flops_per_step(cfg, batch, ENC_LEN, DEC_LEN)
    times: dict[str, list[float]] = {name: [] for name in fns}
    peaks: list[float] = []
    for r in range(rounds):  # each round: the matmul peak under the current load, then both models
        peaks.append(measure_matmul_peak("cpu", torch.float32, size=1024, seconds=0.25))
        # who goes first swaps every round: the first after the peak measurement inherits its memory
        # state (freed buffers, page faults to come), which would otherwise always fall to one model
        order = dict(reversed(fns.items())) if r % 2 else fns
        for name, seconds in alternate(order, 1).items():
            times[name].append(seconds[0])
    tokens = steps * batch * (ENC_LEN + DEC_LEN)
    rates = {k: [tokens / t for t in v] for k, v in times.items()}
    mfus = {k: [flops / t / p for t, p in zip(v, peaks, strict=True)] for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in rates.items()}
    n_params = sum(p.numel() for p in ours.parameters())
    print(f"\n### training step, `{preset}` ({n_params / 1e6:.2f}M params), batch {batch}, "
          f"encoder {ENC_LEN} + decoder {DEC_LEN} tokens, dropout {dropout}, {steps} steps per round, "
          f"{rounds} rounds\n")
    print("| model | tokens/s (median) | MFU (median) | all rounds (tokens/s) |")
    print("|---|---|---|---|")
    for name, label in (("ours", "minitransformer T5"), ("hf", "transformers T5ForConditionalGeneration")):
        print(f"| {label} | {med[name]:,.0f} | {statistics.median(mfus[name]):.0%} | "
              f"{', '.join(f'{r:,.0f}' for r in rates[name])} |")
    ratio = statistics.median(o / h for o, h in zip(rates["ours"], rates["hf"], strict=True))
    print(f"\nours / transformers = **{ratio:.2f}x** (median of per-round ratios; goal >= 1.15x). "
          f"MFU: {t5_flops_per_step(cfg, batch, ENC_LEN, DEC_LEN) / 1e9:.2f} GFLOP per step "
          f"(minitransformer.flops.t5_flops_per_step) over a 1024x1024 float32 matmul peak measured before "
          f"each round (median {statistics.median(peaks) / 1e9:.0f} GFLOP/s)")
    return ratio


def bench_generate(num_beams: int, rounds: int, batch: int, new_tokens: int) -> float:
    import transformers

    cfg = T5Config.preset("t5-small", dropout=0.0)
    torch.manual_seed(0)
    ours = T5(cfg).eval()
    hf = hf_twin(ours).eval()
    x = torch.randint(2, cfg.vocab_size, (batch, ENC_LEN), generator=torch.Generator().manual_seed(1))
    gen_cfg = transformers.GenerationConfig(decoder_start_token_id=cfg.decoder_start_token_id,
                                            eos_token_id=cfg.eos_token_id, pad_token_id=cfg.pad_token_id,
                                            num_beams=num_beams, do_sample=False, max_new_tokens=new_tokens)
    outputs: dict[str, torch.Tensor] = {}

    def run_ours() -> None:
        outputs["ours"] = ours.generate(x, max_new_tokens=new_tokens, num_beams=num_beams)

    def run_hf() -> None:
        with torch.no_grad():
            outputs["hf"] = hf.generate(x, generation_config=gen_cfg)

    fns = {"ours": run_ours, "hf": run_hf}
    alternate(fns, 1)  # warm-up
    times = alternate(fns, rounds)
    # transformers' beam search fills the tail after eos with `pad_token_id or eos_token_id`, i.e.
    # with eos when pad is 0 (T5); we pad with pad. Compare with that tail padded.
    ref = outputs["hf"].clone()
    after_eos = (ref[:, 1:] == cfg.eos_token_id).long().cumsum(dim=1) - (ref[:, 1:] == cfg.eos_token_id).long() > 0
    ref[:, 1:] = ref[:, 1:].masked_fill(after_eos, cfg.pad_token_id)
    same = outputs["ours"].shape == ref.shape and torch.equal(outputs["ours"], ref)
    n_new = batch * (outputs["ours"].shape[1] - 1)
    rates = {k: [n_new / t for t in v] for k, v in times.items()}
    med = {k: statistics.median(v) for k, v in rates.items()}
    kind = "greedy" if num_beams == 1 else f"beam search, {num_beams} beams"
    print(f"\n### generation, `t5-small`, {kind}: batch {batch}, input {ENC_LEN} tokens, "
          f"{outputs['ours'].shape[1] - 1} new tokens, {rounds} rounds (KV cache on both)\n")
    print("| model | new tokens/s (median) | all rounds |")
    print("|---|---|---|")
    for name, label in (("ours", "minitransformer T5.generate"), ("hf", "transformers generate")):
        print(f"| {label} | {med[name]:,.1f} | {', '.join(f'{r:,.1f}' for r in rates[name])} |")
    ratio = med["ours"] / med["hf"]
    print(f"\nours / transformers = **{ratio:.2f}x** (goal >= 1.0x); identical ids: {same}")
    return ratio


def bench_lookup(preset: str, steps: int, rounds: int) -> float:
    """Our training step as it is vs the same model looking ``shared`` up twice, the plain way.

    ``T5.forward`` looks the encoder's and the decoder's ids up in one call and, with the tied LM
    head on the CPU, lets the head hand its gradient table to the lookup (see ``T5._lookup_both``
    and ``TiedGradient``). The baseline is the plain way: two ``F.embedding`` calls and a plain
    head, whose backward builds dense (vocab_size, d_model) gradients that autograd then adds up.
    """
    import torch.nn.functional as F

    cfg = T5Config.preset(preset, dropout=0.0)
    batch = TRAIN_BATCH[preset]
    torch.manual_seed(0)
    one = T5(cfg).train()
    two = T5(cfg).train()
    two.load_state_dict(one.state_dict())

    def two_dense_lookups(input_ids: torch.Tensor, decoder_input_ids: torch.Tensor) -> tuple[torch.Tensor, None]:
        w = two.shared.weight
        return torch.cat([F.embedding(input_ids, w), F.embedding(decoder_input_ids, w)], dim=1), None

    two._lookup_both = two_dense_lookups  # this instance only
    data = random_pairs(cfg, batch)
    fns = {"one": training_run(lambda x, y: one(x, labels=y).loss, one, data, steps),
           "two": training_run(lambda x, y: two(x, labels=y).loss, two, data, steps)}
    alternate(fns, 1)  # warm-up
    times = alternate(fns, rounds)
    ratios = [b / a for a, b in zip(times["one"], times["two"], strict=True)]
    ratio = statistics.median(ratios)
    print(f"\n### shared-embedding lookup, `{preset}`, batch {batch}, {steps} steps per round, {rounds} rounds\n")
    print("step time, two plain lookups and a plain head / ours (one lookup, the head's table handed over): "
          f"**{ratio:.3f}x** (median of per-round ratios; rounds {', '.join(f'{r:.3f}' for r in ratios)})")
    return ratio


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["train", "generate", "all", "lookup"])
    p.add_argument("--rounds", type=int, default=5, help="alternating timed rounds per model")
    p.add_argument("--steps-tiny", type=int, default=10, help="training steps per round at `tiny`")
    p.add_argument("--steps-small", type=int, default=1, help="training steps per round at `t5-small`")
    p.add_argument("--batch-small", type=int, nargs="+", default=[TRAIN_BATCH["t5-small"]],
                   help="batch sizes to measure at `t5-small` (tiny: always 16)")
    p.add_argument("--dropout", type=float, nargs="+", default=[0.0, 0.1],
                   help="training dropout rates to measure (T5 pretrained and fine-tuned with 0.1)")
    p.add_argument("--gen-batch", type=int, default=4)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU float32 "
          f"({os.cpu_count()} cores visible)")
    if args.what in ("train", "all"):
        for dropout in args.dropout:
            bench_train("tiny", args.steps_tiny, args.rounds, dropout)
            for batch in args.batch_small:
                bench_train("t5-small", args.steps_small, args.rounds, dropout, batch)
    if args.what == "lookup":
        bench_lookup("tiny", args.steps_tiny, args.rounds)
        bench_lookup("t5-small", args.steps_small, args.rounds)
    if args.what in ("generate", "all"):
        bench_generate(1, args.rounds, args.gen_batch, args.new_tokens)
        bench_generate(4, args.rounds, args.gen_batch, args.new_tokens)


if __name__ == "__main__":
    main()
