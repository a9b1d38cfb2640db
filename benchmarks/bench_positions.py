"""What each GPT position scheme costs, and our RoPE GPT against transformers' GPT-NeoX (CPU).

    python benchmarks/bench_positions.py train      # training steps: each scheme vs learned; RoPE vs GPT-NeoX
    python benchmarks/bench_positions.py generate   # 200 new tokens with the KV cache: each scheme vs learned
    python benchmarks/bench_positions.py all

Shapes are ``bench_gpt.py``'s: (a) nanoGPT's CPU Shakespeare model (4 layers, 128 wide, context 64,
batch 12) and (b) 6 layers, 384 wide, context 256, batch 8. The models of one comparison are built
from the same seed and see the same batches; they take turns, a block of steps each, round after
round in one process, so they share whatever else the machine does. Each figure is the median of
the per-round ratios. A step is forward, backward and a fused AdamW step for every model.
GPT-NeoX is ``mt.to_hf_model`` of our RoPE GPT: the same weights (``interop/gpt_neox.py``).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from bench_gpt import TRAIN_SHAPES  # noqa: E402  (benchmarks/ is on sys.path when run as a script)
from bench_t5 import training_run  # noqa: E402

import minitransformer as mt  # noqa: E402
from minitransformer.nn.position import POSITIONS  # noqa: E402


def take_turns(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each function, taking turns round after round (the first to go alternates)."""
    fns_list = list(fns.items())
    for _, fn in fns_list:  # warm-up: allocator, kernels, optimizer state
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in (fns_list if r % 2 == 0 else fns_list[::-1]):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def report(title: str, times: dict[str, list[float]], tokens: int, baseline: str) -> None:
    print(f"\n### {title}\n")
    print(f"| model | tokens/s (median) | vs {baseline} (median of per-round ratios) |")
    print("|---|---|---|")
    for name, seconds in times.items():
        ratio = statistics.median(b / s for s, b in zip(seconds, times[baseline], strict=True))
        print(f"| {name} | {statistics.median(tokens / s for s in seconds):,.0f} | {ratio:.2f}x |")


def bench_train(shape: str, steps: int, rounds: int) -> None:
    base_cfg, batch = TRAIN_SHAPES[shape]
    gen = torch.Generator().manual_seed(0)
    windows = [torch.randint(0, base_cfg.vocab_size, (batch, base_cfg.max_seq_len), generator=gen) for _ in range(4)]
    data = [(x, x) for x in windows]  # (inputs, labels): a GPT shifts the labels itself
    fns, models = {}, {}
    for position in POSITIONS:
        torch.manual_seed(0)
        models[position] = model = mt.GPT(dataclasses.replace(base_cfg, position=position)).train()
        fns[position] = training_run(lambda x, y, m=model: m(x, labels=y).loss, model, data, steps)
    tokens = steps * batch * base_cfg.max_seq_len
    shape_text = (f"shape ({shape}): {base_cfg.n_layers} layers, {base_cfg.d_model} wide, context "
                  f"{base_cfg.max_seq_len}, batch {batch}, {steps} steps per block, {rounds} rounds")
    report(f"training step, each scheme vs learned, {shape_text}", take_turns(fns, rounds), tokens, "learned")

    # our RoPE GPT against transformers' GPT-NeoX with the same weights (exact GELU, untied head: NeoX's
    # shape), sequential with RoPE on whole heads, then Pythia's (parallel, RoPE on a quarter of each head)
    for name, extra in (("sequential, full rotary", {}),
                        ("Pythia's shape", dict(parallel_residual=True, rotary_fraction=0.25))):
        torch.manual_seed(0)
        ours = mt.GPT(dataclasses.replace(base_cfg, position="rope", activation="gelu", tie_embeddings=False,
                                          **extra)).train()
        neox = mt.to_hf_model(ours).train()
        neox.config._attn_implementation = "sdpa"
        fns = {"minitransformer GPT (rope)": training_run(lambda x, y, m=ours: m(x, labels=y).loss, ours, data, steps),
               "transformers GPTNeoXForCausalLM": training_run(lambda x, y, m=neox: m(input_ids=x, labels=y).loss,
                                                               neox, data, steps)}
        report(f"training step, RoPE GPT vs GPT-NeoX ({name}), {shape_text}", take_turns(fns, rounds), tokens,
               "transformers GPTNeoXForCausalLM")


def bench_generate(new_tokens: int, rounds: int) -> None:
    base_cfg, _ = TRAIN_SHAPES["b"]
    prompt = torch.randint(0, base_cfg.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    fns = {}
    for position in POSITIONS:
        torch.manual_seed(0)
        model = mt.GPT(dataclasses.replace(base_cfg, position=position)).eval()
        fns[position] = lambda m=model: m.generate(prompt, max_new_tokens=new_tokens, do_sample=False)
    report(f"greedy generation with the KV cache, shape (b), prompt 16 + {new_tokens} new tokens, {rounds} rounds",
           take_turns(fns, rounds), new_tokens, "learned")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["train", "generate", "all"])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps-a", type=int, default=20, help="training steps per block at shape (a)")
    p.add_argument("--steps-b", type=int, default=2, help="training steps per block at shape (b)")
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    if args.what in ("train", "all"):
        bench_train("a", args.steps_a, args.rounds)
        bench_train("b", args.steps_b, args.rounds)
    if args.what in ("generate", "all"):
        bench_generate(args.new_tokens, args.rounds)


if __name__ == "__main__":
    main()
