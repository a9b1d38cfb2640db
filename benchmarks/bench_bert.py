"""BERT speed on CPU vs Hugging Face transformers, and fine-tuning MiniLM on the play-classification task.

    python benchmarks/bench_bert.py train      # MLM+NSP training step tokens/s, tiny and bert-base-like shapes
    python benchmarks/bench_bert.py embed      # all-MiniLM-L6-v2 sentence embeddings/s
    python benchmarks/bench_bert.py finetune   # MiniLM + classification head vs majority / bag-of-words baselines
    python benchmarks/bench_bert.py classify   # the classifier's fine-tuning step vs BertForSequenceClassification
    python benchmarks/bench_bert.py cuda       # on a GPU: CPU/GPU/transformers equality, bf16 training speed
    python benchmarks/bench_bert.py all --out benchmarks/results/bert.md

Ours and transformers run alternately in one process with the same weights and the same data,
so both see the same machine load; each figure is the median of several timed rounds.

train: one step = forward (MLM + NSP loss, 15% of positions selected, dropout 0.1) + backward +
AdamW step, with ``torch.optim.AdamW(fused=True)`` for both models. Ours runs as the trainer runs
it (``return_mlm_logits=False``: MLM logits only at the selected positions, as Google's BERT does
with ``masked_lm_positions``); "ours (full logits)" computes the whole (B, T, V) logits as
transformers does. MFU = tokens/s x model FLOPs/token / a float32 matmul peak measured just before
each timed round (``minitransformer.flops.measure_matmul_peak``), with model FLOPs/token =
6·N_enc + 12·L·T·d + p·6·(N_mlm_transform + V·E) + 6·N_pooler+nsp / T
(N_enc: encoder layers + ELECTRA projection; p = 0.15: the MLM head is needed at selected
positions only; embedding lookups cost no FLOPs). The same formula is used for both models.

embed: the same tokenized batches (ours; 32 sentences of the Shakespeare corpus per batch, sorted
by length) through our ``SentenceEncoder.embed_batch`` and through ``transformers.BertModel`` +
the same mean pooling and normalisation. Tokenization is not timed.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing (a GPU box)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from minitransformer.interop import bert as bert_interop  # noqa: E402
from minitransformer.models.bert import Bert  # noqa: E402
from minitransformer.models.config import BertConfig  # noqa: E402

try:
    from minitransformer.flops import measure_matmul_peak
except ImportError:  # pragma: no cover - older checkouts
    measure_matmul_peak = None

TRAIN_SHAPES = {
    # name: (config, batch size, training steps per timed round); sequence length 128
    "tiny": (BertConfig(vocab_size=512, max_seq_len=128, d_model=64, n_layers=2, n_heads=4, d_ff=256, dropout=0.1),
             16, 20),
    # BERT-base widths and vocabulary, 4 layers instead of 12 so the run takes minutes on 2 cores
    "bert-base-like (4 layers)": (BertConfig.preset("bert-base", n_layers=4, max_seq_len=128), 8, 2),
}
SEQ_LEN = 128
MLM_PROBABILITY = 0.15


def _matmul_peak(seconds: float = 1.0) -> float:
    if measure_matmul_peak is not None:
        return measure_matmul_peak("cpu", torch.float32, size=1024, seconds=seconds)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(20):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * 1024**3 / best


def model_flops_per_token(cfg: BertConfig, seq_len: int, mlm_fraction: float = MLM_PROBABILITY) -> float:
    """Training FLOPs per token that the model needs (see the module docstring)."""
    d, e, f = cfg.d_model, cfg.embedding_size, cfg.d_ff
    layer = 4 * d * d + 2 * d * f  # qkv + out + ffn (weights only; biases/norms are negligible)
    n_enc = cfg.n_layers * layer + (e * d if e != d else 0)
    n_mlm = d * e + cfg.vocab_size * e if cfg.mlm_head else 0
    n_seq = (d * d if cfg.pooler else 0) + (2 * d if cfg.nsp_head else 0)  # once per sequence
    return 6 * n_enc + 12 * cfg.n_layers * seq_len * d + mlm_fraction * 6 * n_mlm + 6 * n_seq / seq_len


def hf_twin(ours: Bert, attn: str = "sdpa"):
    """transformers' pretraining class for this config, with exactly our weights."""
    import transformers

    kind = bert_interop.hf_model_type(ours.config)
    config_cls = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig,
                  "electra": transformers.ElectraConfig}[kind]
    hf_config = config_cls(**bert_interop.config_to_hf(ours.config))
    hf_config._attn_implementation = attn
    hf = getattr(transformers, bert_interop.hf_architecture(ours.config))(hf_config)
    hf.load_state_dict(bert_interop.state_dict_to_hf(ours.state_dict(), ours.config), strict=True)
    return hf


def _median_rounds(contenders: dict, rounds: int) -> dict[str, float]:
    """Run each contender once per round, alternating; return the median of each one's figures."""
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            results[name].append(fn())
    return {name: statistics.median(values) for name, values in results.items()}


def _train_rates(cfg: BertConfig, batch: int, rounds: int, steps: int) -> dict[str, float]:
    """Median training tokens/s of ours (gathered MLM logits), ours (full logits) and transformers."""
    torch.manual_seed(0)
    ours = Bert(cfg).train()
    hf = hf_twin(ours).train()
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    gen = torch.Generator().manual_seed(0)
    data = []
    for _ in range(2):
        ids = torch.randint(5, cfg.vocab_size, (batch, SEQ_LEN), generator=gen)
        types = torch.zeros_like(ids)
        types[:, SEQ_LEN // 2:] = 1
        mask = torch.ones_like(ids)
        labels = torch.where(torch.rand(ids.shape, generator=gen) < MLM_PROBABILITY, ids, -100)
        nsp = torch.randint(0, 2, (batch,), generator=gen)
        data.append((ids, types, mask, labels, nsp))

    def step_ours(b, full_logits=False):
        ids, types, mask, labels, nsp = b
        out = ours(ids, types, mask, mlm_labels=labels, nsp_labels=nsp, return_mlm_logits=full_logits)
        out.loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_ours_full(b):
        step_ours(b, full_logits=True)

    def step_hf(b):
        ids, types, mask, labels, nsp = b
        out = hf(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels, next_sentence_label=nsp)
        out.loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)

    flops = model_flops_per_token(cfg, SEQ_LEN)

    def timed(step) -> tuple[float, float]:
        """(tokens/s, MFU against the matmul peak measured just before, under the same machine load)."""
        peak = _matmul_peak(seconds=0.25)
        t0 = time.perf_counter()
        for i in range(steps):
            step(data[i % len(data)])
        rate = steps * batch * SEQ_LEN / (time.perf_counter() - t0)
        return rate, rate * flops / peak

    for b in data:  # warm-up: allocator, kernels, optimizer state
        step_ours(b)
        step_ours_full(b)
        step_hf(b)
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "ours_full": [], "hf": []}
    for _ in range(rounds):  # alternate, so that all three see the same machine load
        for name, step in (("ours", step_ours), ("ours_full", step_ours_full), ("hf", step_hf)):
            runs[name].append(timed(step))
    med = {name: statistics.median(r for r, _ in values) for name, values in runs.items()}
    med.update({f"mfu_{name}": statistics.median(m for _, m in values) for name, values in runs.items()})
    med["ratio"] = statistics.median(o / h for (o, _), (h, _) in zip(runs["ours"], runs["hf"], strict=True))
    med["ratio_full"] = statistics.median(o / h for (o, _), (h, _) in zip(runs["ours_full"], runs["hf"], strict=True))
    return med


def bench_train(rounds: int, steps_scale: float = 1.0) -> list[str]:
    lines = ["| shape | batch x seq | ours tok/s | ours (full logits) tok/s | transformers tok/s | "
             "ours / transformers | MFU ours | MFU ours (full logits) | MFU transformers |",
             "|---|---|---|---|---|---|---|---|---|"]
    for shape, (cfg, batch, shape_steps) in TRAIN_SHAPES.items():
        med = _train_rates(cfg, batch, rounds, max(1, round(shape_steps * steps_scale)))
        lines.append(f"| {shape} | {batch} x {SEQ_LEN} | {med['ours']:,.0f} | {med['ours_full']:,.0f} | "
                     f"{med['hf']:,.0f} | {med['ratio']:.2f}x (full logits: {med['ratio_full']:.2f}x) | "
                     f"{med['mfu_ours']:.0%} | {med['mfu_ours_full']:.0%} | {med['mfu_hf']:.0%} |")
        print(lines[-1], flush=True)
    lines.append(f"\nMedians over {rounds} alternating rounds; ratios are medians of per-round "
                 "ratios. MFU: each timed round divided by a 1024x1024 float32 matmul peak measured just before it "
                 f"(load on a shared machine changes from minute to minute). Now: {_matmul_peak() / 1e9:.0f} GFLOP/s.")
    return lines


def _sentences(n: int) -> list[str]:
    from minitransformer.data import load_corpus, split_sentences

    sentences = [s for s in split_sentences(load_corpus("shakespeare")) if len(s.split()) >= 3]
    step = max(1, len(sentences) // n)
    return sentences[::step][:n]


def bench_embed(rounds: int, n_sentences: int, batch_size: int = 32) -> list[str]:
    import transformers

    from minitransformer.embedding_search import SentenceEncoder, mean_pool, minilm_folder

    encoder = SentenceEncoder.from_pretrained()
    hf_config = transformers.BertConfig.from_json_file(str(minilm_folder() / "config.json"))
    hf_config._attn_implementation = "sdpa"
    hf = transformers.BertModel(hf_config).eval()
    hf.load_state_dict(bert_interop.state_dict_to_hf(encoder.model.state_dict(), encoder.model.config), strict=True)
    texts = _sentences(n_sentences)
    batch = encoder.tokenize(texts)  # our token ids, shared by both models
    lengths = batch["attention_mask"].sum(1)
    order = lengths.argsort()
    batches = []
    for start in range(0, len(texts), batch_size):
        rows = order[start:start + batch_size]
        width = int(lengths[rows].max())
        batches.append((batch["input_ids"][rows, :width], batch["attention_mask"][rows, :width]))

    def ours() -> float:
        t0 = time.perf_counter()
        for ids, mask in batches:
            encoder.embed_batch(ids, mask)
        return len(texts) / (time.perf_counter() - t0)

    @torch.no_grad()
    def reference() -> float:
        t0 = time.perf_counter()
        for ids, mask in batches:
            hidden = hf(input_ids=ids, attention_mask=mask).last_hidden_state
            F.normalize(mean_pool(hidden, mask), dim=-1)
        return len(texts) / (time.perf_counter() - t0)

    ours(), reference()  # warm-up
    runs = {"ours": [], "hf": []}
    for _ in range(rounds):  # alternate, so that both see the same machine load
        runs["ours"].append(ours())
        runs["hf"].append(reference())
    med = {name: statistics.median(values) for name, values in runs.items()}
    ratio = statistics.median(o / h for o, h in zip(runs["ours"], runs["hf"], strict=True))
    t0 = time.perf_counter()
    encoder.encode(texts, batch_size=batch_size)
    end_to_end = len(texts) / (time.perf_counter() - t0)
    mean_tokens = float(lengths.float().mean())
    return ["| model | sentences | mean tokens | ours sent/s | transformers sent/s | ours / transformers | "
            "ours incl. our tokenizer sent/s |", "|---|---|---|---|---|---|---|",
            f"| all-MiniLM-L6-v2 | {len(texts)} | {mean_tokens:.1f} | {med['ours']:,.1f} | {med['hf']:,.1f} | "
            f"{ratio:.2f}x | {end_to_end:,.1f} |", "",
            f"Medians over {rounds} alternating rounds; the ratio is the median of per-round ratios."]


def bench_finetune(seconds: float | None, pooling: str, lr: float, batch_size: int, max_length: int,
                   epochs: float = 3.0, device: str = "cpu") -> list[str]:
    from minitransformer.data import majority_baseline, make_play_classification, naive_bayes_baseline
    from minitransformer.embedding_search import SentenceEncoder
    from minitransformer.finetune import FinetuneConfig, SequenceClassifier, finetune_classifier

    task = make_play_classification()
    encoder = SentenceEncoder.from_pretrained()
    torch.manual_seed(0)
    model = SequenceClassifier(encoder.model, n_classes=len(task.labels), pooling=pooling).to(device)
    cfg = FinetuneConfig(lr=lr, batch_size=batch_size, max_length=max_length, time_budget_s=seconds, epochs=epochs)
    result = finetune_classifier(model, encoder.tokenizer, task.train, task.test, cfg)
    seen = result.steps * batch_size
    where = "CPU" if device == "cpu" else torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    return [f"Task: which of {len(task.labels)} plays a passage of 4 spoken lines comes from "
            f"({len(task.train)} train / {len(task.test)} test passages, test = held-out contiguous blocks).", "",
            "| classifier | test accuracy |", "|---|---|",
            f"| majority class | {majority_baseline(task):.1%} |",
            f"| bag of words (multinomial naive Bayes) | {naive_bayes_baseline(task):.1%} |",
            f"| all-MiniLM-L6-v2 + classification head ({pooling} pooling), fine-tuned {result.seconds:.0f} s "
            f"on {where} ({result.steps} steps of {batch_size}, {seen / len(task.train):.2f} epochs, lr {lr:g}, "
            f"max {max_length} tokens) | {result.test_accuracy:.1%} |"]


def bench_classify(rounds: int, steps: int = 3, batch: int = 32, max_length: int = 64) -> list[str]:
    """The step of ``minitransformer finetune bert --from minilm``: ours vs transformers.BertForSequenceClassification.

    The same all-MiniLM-L6-v2 weights and new head in both (pooled [CLS], dropout 0.1, 8 classes), the
    same batches of play passages (our token ids, padded to the longest of the batch, at most
    ``max_length``), forward + cross-entropy + backward + fused AdamW. Checked first: equal logits
    in eval mode.
    """
    import warnings

    import transformers

    from minitransformer.data.pairs import builtin_task
    from minitransformer.embedding_search import minilm_folder
    from minitransformer.finetune import ClassifierConfig, SequenceClassifier
    from minitransformer.tokenizers import load_tokenizer

    with warnings.catch_warnings():  # (MiniLM has no MLM or NSP head; the classifier needs neither)
        warnings.simplefilter("ignore")
        base = Bert.from_pretrained(minilm_folder())
    train, _ = builtin_task("plays")
    labels = sorted({p.target for p in train})
    torch.manual_seed(0)
    ours = SequenceClassifier.from_config(ClassifierConfig.for_encoder(base.config, labels))
    ours.encoder.load_state_dict({k: v for k, v in base.state_dict().items() if k in ours.encoder.state_dict()})
    hf_config = transformers.BertConfig.from_json_file(str(minilm_folder() / "config.json"))
    hf_config.num_labels, hf_config._attn_implementation = len(labels), "sdpa"
    hf = transformers.BertForSequenceClassification(hf_config)
    hf.bert.load_state_dict(bert_interop.state_dict_to_hf(ours.encoder.state_dict(), ours.encoder.config), strict=True)
    hf.classifier.load_state_dict(ours.head.classifier.state_dict())

    tok = load_tokenizer(minilm_folder() / "tokenizer.json")
    cls_id, sep_id, pad_id = (tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    gen = torch.Generator().manual_seed(0)
    data = []
    for _ in range(2):
        rows = torch.randint(len(train), (batch,), generator=gen).tolist()
        seqs = [[cls_id, *tok.encode(train[r].source)[: max_length - 2], sep_id] for r in rows]
        width = max(map(len, seqs))
        ids = torch.full((batch, width), pad_id)
        mask = torch.zeros_like(ids)
        for i, seq in enumerate(seqs):
            ids[i, :len(seq)], mask[i, :len(seq)] = torch.tensor(seq), 1
        data.append((ids, mask, torch.tensor([labels.index(train[r].target) for r in rows])))

    ours.eval(), hf.eval()
    with torch.no_grad():
        ids, mask, _ = data[0]
        diff = (ours(ids, attention_mask=mask).logits - hf(input_ids=ids, attention_mask=mask).logits).abs().max()
    ours.train(), hf.train()
    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
            for name, m in (("ours", ours), ("hf", hf))}

    def step(name: str, b) -> None:
        ids, mask, y = b
        loss = (ours(ids, attention_mask=mask, labels=y).loss if name == "ours"
                else hf(input_ids=ids, attention_mask=mask, labels=y).loss)
        loss.backward()
        opts[name].step()
        opts[name].zero_grad(set_to_none=True)

    def timed(name: str) -> float:
        t0 = time.perf_counter()
        for i in range(steps):
            step(name, data[i % len(data)])
        return steps * batch / (time.perf_counter() - t0)

    for name in ("ours", "hf"):  # warm-up: allocator, kernels, optimizer state
        for b in data:
            step(name, b)
    runs = {"ours": [], "hf": []}
    for r in range(rounds):  # alternate, swapping who goes first every round
        for name in (("ours", "hf") if r % 2 == 0 else ("hf", "ours")):
            runs[name].append(timed(name))
    med = {name: statistics.median(v) for name, v in runs.items()}
    ratio = statistics.median(o / h for o, h in zip(runs["ours"], runs["hf"], strict=True))
    widths = [int(b[1].sum(1).max()) for b in data]
    return ["| model | batch x tokens | ours examples/s | transformers examples/s | ours / transformers | "
            "logits max abs diff (eval) |", "|---|---|---|---|---|---|",
            f"| all-MiniLM-L6-v2 + 8-class head | {batch} x {widths[0]}/{widths[1]} | {med['ours']:,.1f} | "
            f"{med['hf']:,.1f} | {ratio:.2f}x | {float(diff):.1e} |", "",
            f"{steps} steps per round, medians over {rounds} alternating rounds; the ratio is the median of "
            "per-round ratios."]


def bench_cuda(rounds: int, steps: int, device: str = "cuda", train_cfg: BertConfig | None = None,
               batch: int = 32) -> list[str]:
    """On a GPU: our model equals itself on the CPU and transformers on the GPU; bf16 training speed vs transformers.

    ``device="cpu"`` with a tiny ``train_cfg`` is a dry run of this code path.
    """
    import transformers

    from minitransformer.data import mask_tokens
    from minitransformer.models.bert import ElectraPretraining

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else device
    torch.backends.cuda.matmul.allow_tf32 = False  # exact float32 for the equality checks
    torch.backends.cudnn.allow_tf32 = False
    lines = [f"Device: {name}, torch {torch.__version__}, "
             f"transformers {transformers.__version__}", ""]
    # 1. CPU vs GPU, and ours vs transformers on the GPU (float32, padded batch with two segments)
    cfg = BertConfig(vocab_size=1000, max_seq_len=64, d_model=128, n_layers=2, n_heads=4, dropout=0.0)
    torch.manual_seed(0)
    cpu_model = Bert(cfg).eval()
    gpu_model = Bert(cfg).to(dev).eval()
    gpu_model.load_state_dict(cpu_model.state_dict())
    hf = hf_twin(cpu_model).to(dev).eval()
    ids = torch.randint(5, 1000, (4, 40))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    mask[3, 10:] = 0
    types = torch.zeros_like(ids)
    types[:, 20:] = 1
    with torch.no_grad():
        a = cpu_model(ids, types, mask)
        b = gpu_model(ids.to(dev), types.to(dev), mask.to(dev))
        ref = hf(input_ids=ids.to(dev), token_type_ids=types.to(dev), attention_mask=mask.to(dev))
    cpu_gpu = max((a.mlm_logits - b.mlm_logits.cpu()).abs().max().item(), (a.pooled - b.pooled.cpu()).abs().max().item())
    ours_hf = max((b.mlm_logits - ref.prediction_logits).abs().max().item(),
                  (b.nsp_logits - ref.seq_relationship_logits).abs().max().item())
    lines += [f"- float32, padded batch: max |ours CPU - ours GPU| = {cpu_gpu:.1e}; "
              f"max |ours GPU - transformers GPU| = {ours_hf:.1e} (MLM and NSP logits)"]
    # 2. ELECTRA's objective runs on the GPU with a CPU random generator
    disc = BertConfig(vocab_size=1000, max_seq_len=64, d_model=128, n_layers=2, n_heads=4, embedding_size=64,
                      pooler=False, mlm_head=False, nsp_head=False, discriminator_head=True)
    electra = ElectraPretraining(disc).to(dev)
    masked, labels = mask_tokens(ids, vocab_size=1000, mask_token_id=4, special_token_ids=[0, 1, 2, 3, 4],
                                 generator=torch.Generator().manual_seed(0))
    out = electra(masked.to(dev), labels.to(dev), generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    lines += [f"- ELECTRA generator + discriminator step on the GPU: loss {out.loss.item():.3f}, "
              f"{int(out.replaced.sum())} replaced tokens"]
    # 3. training speed, BERT-base (12 layers), bf16 autocast, batch 32 x 128
    torch.backends.cuda.matmul.allow_tf32 = True
    cfg = train_cfg or BertConfig.preset("bert-base", max_seq_len=SEQ_LEN)
    torch.manual_seed(0)
    ours = Bert(cfg).to(dev).train()
    hf = hf_twin(ours).to(dev).train()
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4, fused=True)
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4, fused=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(5, cfg.vocab_size, (batch, SEQ_LEN), generator=gen)
    types = torch.zeros_like(x)
    types[:, SEQ_LEN // 2:] = 1
    labels = torch.where(torch.rand(x.shape, generator=gen) < MLM_PROBABILITY, x, -100)
    nsp = torch.randint(0, 2, (batch,), generator=gen)
    x, types, labels, nsp, mask = x.to(dev), types.to(dev), labels.to(dev), nsp.to(dev), torch.ones_like(x).to(dev)

    def step_ours(full: bool = False, unaligned: bool = False):
        ours.mlm_head.logits_multiple_of = 1 if unaligned else None  # 1: the plain F.linear MLM head
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = ours(x, types, mask, mlm_labels=labels, nsp_labels=nsp, return_mlm_logits=full).loss
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    def step_hf():
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = hf(input_ids=x, token_type_ids=types, attention_mask=mask, labels=labels,
                      next_sentence_label=nsp).loss
        loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)

    def timed(step) -> float:
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        return steps * batch * SEQ_LEN / (time.perf_counter() - t0)

    for _ in range(3):
        step_ours(), step_ours(True), step_ours(unaligned=True), step_hf()
    med = _median_rounds({"ours": lambda: timed(step_ours), "full": lambda: timed(lambda: step_ours(True)),
                          "unaligned": lambda: timed(lambda: step_ours(unaligned=True)),
                          "hf": lambda: timed(step_hf)}, rounds)
    lines += ["", f"| BERT-base training step, bf16 autocast, {batch} x {SEQ_LEN} | tokens/s |", "|---|---|",
              f"| ours | {med['ours']:,.0f} ({med['ours'] / med['hf']:.2f}x) |",
              f"| ours (full logits) | {med['full']:,.0f} ({med['full'] / med['hf']:.2f}x) |",
              f"| ours, MLM head not 8-aligned (diagnostic: vocabulary {cfg.vocab_size} unpadded) | "
              f"{med['unaligned']:,.0f} ({med['unaligned'] / med['hf']:.2f}x) |",
              f"| transformers BertForPreTraining (sdpa) | {med['hf']:,.0f} |"]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["train", "embed", "finetune", "classify", "cuda", "all"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=float, default=1.0,
                        help="scale of the steps per timed round (train: tiny 20, bert-base-like 2; cuda: 10)")
    parser.add_argument("--sentences", type=int, default=512)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's)")
    parser.add_argument("--finetune-seconds", type=float, default=180.0, help="0: no time limit (--epochs decide)")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--device", default="cpu", help="device for finetune (e.g. cuda)")
    parser.add_argument("--pooling", choices=["cls", "mean"], default="mean")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", default=None, help="also write the tables to this markdown file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    header = [f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (shared), "
              f"{'the GPU below' if args.what == 'cuda' else 'no GPU'}; torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads.", ""]
    sections = []
    if args.what in ("train", "all"):
        sections += ["## Training step (MLM + NSP), ours vs transformers.BertForPreTraining", ""]
        sections += bench_train(args.rounds, args.steps) + [""]
    if args.what in ("embed", "all"):
        sections += ["## Sentence embeddings, ours vs transformers.BertModel", ""]
        sections += bench_embed(args.rounds, args.sentences) + [""]
    if args.what in ("classify", "all"):
        sections += ["## Fine-tuning step of a classifier (`minitransformer finetune bert --from minilm`), ours vs "
                     "transformers.BertForSequenceClassification", ""]
        sections += bench_classify(args.rounds, max(1, round(3 * args.steps)), args.batch_size, args.max_length) + [""]
    if args.what in ("finetune", "all"):
        sections += ["## Fine-tuning all-MiniLM-L6-v2 for play classification", ""]
        sections += bench_finetune(args.finetune_seconds or None, args.pooling, args.lr, args.batch_size,
                                   args.max_length, args.epochs, args.device) + [""]
    if args.what == "cuda":
        sections += ["## On a GPU", ""] + bench_cuda(args.rounds, max(1, round(10 * args.steps))) + [""]
    text = "\n".join(header + sections)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(f"# BERT benchmarks\n\nCommand: `python benchmarks/bench_bert.py {args.what} ...` "
                    f"(see the header of benchmarks/bench_bert.py)\n\n{text}\n")


if __name__ == "__main__":
    main()
