"""`minitransformer exercises list|start|check`: stubs are copied safely, checks fail on the untouched
stub and on wrong answers (with a message that says what differed) and pass on correct solutions.

Correct solutions are written here, mostly by delegating to the library's own functions; a few are
written out the way the stub's hints describe, to make sure a learner who follows them passes.
"""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from minitransformer.cli import main
from minitransformer.exercises import EXERCISES, get_exercise

# ---- solutions (test data: never shipped in the stubs) ---------------------------------------
SOLUTIONS = {
    1: '''
        from collections import Counter

        def most_frequent_pair(words):
            counts = Counter()
            for word, n in words.items():
                for pair in zip(word, word[1:]):
                    counts[pair] += n
            best = max(counts.values())
            return min(pair for pair, n in counts.items() if n == best)

        def merge_pair(word, pair, new_id):
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == tuple(pair):
                    out.append(new_id)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            return tuple(out)
    ''',
    2: '''
        import math
        import torch

        def scaled_dot_product_attention(q, k, v, mask=None):
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            return weights @ v, weights
    ''',
    3: '''
        from minitransformer.nn import causal_mask as _causal, padding_bias as _padding

        def causal_mask(t_q, t_k):
            return _causal(t_q, t_k)

        def padding_bias(attention_mask):
            return _padding(attention_mask)
    ''',
    4: '''
        def pre_ln_block(x, layer, causal=True):
            x = x + layer.self_attn(layer.self_attn_norm(x), is_causal=causal)[0]
            return x + layer.ffn(layer.ffn_norm(x))

        def post_ln_block(x, layer):
            x = layer.self_attn_norm(x + layer.self_attn(x)[0])
            return layer.ffn_norm(x + layer.ffn(x))
    ''',
    5: '''
        import torch

        def filter_top_k(logits, k):
            from minitransformer.generation import filter_top_k as library
            return library(logits, k).clone()

        def filter_top_p(logits, p):  # written out as the stub's hints describe
            if p >= 1:
                return logits.clone()
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            remove_sorted = probs.cumsum(dim=-1) - probs >= p
            remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
            return logits.masked_fill(remove, float("-inf"))
    ''',
    6: '''
        from minitransformer.data import mask_tokens as _library

        def mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability=0.15,
                        generator=None):
            return _library(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability,
                            generator=generator)
    ''',
    7: '''
        import math
        import torch

        def relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
            buckets = torch.zeros_like(relative_position)
            n = num_buckets
            if bidirectional:
                n //= 2
                buckets = buckets + (relative_position > 0).long() * n
                distance = relative_position.abs()
            else:
                distance = (-relative_position).clamp(min=0)
            max_exact = n // 2
            log_bucket = max_exact + (torch.log(distance.float().clamp(min=1) / max_exact)
                                      / math.log(max_distance / max_exact) * (n - max_exact)).long()
            log_bucket = log_bucket.clamp(max=n - 1)
            return buckets + torch.where(distance < max_exact, distance, log_bucket)
    ''',
    8: '''
        import torch

        def grow_vocabulary(table, new_vocab_size):  # written out as the stub's hints describe
            rows = [table[:new_vocab_size]]
            if new_vocab_size > table.shape[0]:
                mean = table.mean(dim=0, dtype=torch.float32).to(table.dtype)
                rows.append(mean.expand(new_vocab_size - table.shape[0], *table.shape[1:]))
            return torch.cat(rows)
    ''',
    9: '''
        def mean_pool(hidden, attention_mask):  # written out as the stub's hints describe
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    ''',
    10: '''
        import torch

        def rotate(x, positions, base=10000.0):  # written out as the stub's hints describe
            d = x.shape[-1]
            work = torch.float64 if x.dtype == torch.float64 else torch.float32
            theta = base ** (-torch.arange(0, d, 2, dtype=work) / d)
            angles = positions[:, None].to(work) * theta  # (T, d/2)
            cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
            first, second = x[..., : d // 2], x[..., d // 2:]
            return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)
    ''',
}


def write_solution(directory: Path, number: int, source: str) -> Path:
    path = directory / get_exercise(number).filename
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["exercises", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- list / start ---------------------------------------------------------------------------
def test_list_prints_one_exercise_a_line_starting_with_its_number(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == len(EXERCISES) >= 6
    assert [int(line.split()[0]) for line in lines] == [e.number for e in EXERCISES]
    for line, exercise in zip(lines, EXERCISES, strict=True):
        assert exercise.filename in line and exercise.title in line


def test_start_copies_the_stub_and_refuses_to_overwrite(capsys, tmp_path):
    exercise = get_exercise(2)
    code, out, _ = run(capsys, "start", "2", "--dir", str(tmp_path / "ex"))
    target = tmp_path / "ex" / exercise.filename
    assert code == 0 and str(target) in out
    assert target.read_text(encoding="utf-8") == exercise.stub_path.read_text(encoding="utf-8")

    target.write_text("# my work\n", encoding="utf-8")
    code, _, err = run(capsys, "start", "2", "--dir", str(tmp_path / "ex"))
    assert code == 2 and "already exists" in err and "--force" in err
    assert target.read_text(encoding="utf-8") == "# my work\n"  # untouched

    code, _, _ = run(capsys, "start", "2", "--dir", str(tmp_path / "ex"), "--force")
    assert code == 0
    assert target.read_text(encoding="utf-8") == exercise.stub_path.read_text(encoding="utf-8")


def test_start_into_a_file_instead_of_a_folder_is_a_user_error(capsys, tmp_path):
    (tmp_path / "not_a_folder").write_text("", encoding="utf-8")
    code, _, err = run(capsys, "start", "1", "--dir", str(tmp_path / "not_a_folder"))
    assert code == 2 and "is a file, not a folder" in err


def test_start_and_check_use_exercises_folder_by_default(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "start", "3")
    assert code == 0 and (tmp_path / "exercises" / get_exercise(3).filename).is_file()
    code, out, _ = run(capsys, "check", "3")
    assert code == 1 and "not written yet" in out


@pytest.mark.parametrize("argv", [("start", "99"), ("check", "0"), ("check", "99")])
def test_unknown_exercise_number_is_a_user_error(capsys, tmp_path, argv):
    code, _, err = run(capsys, *argv, "--dir", str(tmp_path))
    assert code == 2 and "there is no exercise" in err


def test_check_of_a_missing_file_exits_2_and_says_how_to_start(capsys, tmp_path):
    code, _, err = run(capsys, "check", "1", "--dir", str(tmp_path))
    assert code == 2
    assert "not found" in err and "exercises start 1" in err


# ---- stubs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.filename)
def test_stub_holds_no_solution(exercise):
    """Every function in a stub is docstring + `raise NotImplementedError(...)`, nothing else."""
    tree = ast.parse(exercise.stub_path.read_text(encoding="utf-8"))
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert functions
    for fn in functions:
        body = fn.body
        assert ast.get_docstring(fn), f"{fn.name} needs a docstring with shapes and hints"
        assert len(body) == 2, f"{fn.name}: a stub body is its docstring and one raise"
        raise_stmt = body[1]
        assert isinstance(raise_stmt, ast.Raise)
        assert isinstance(raise_stmt.exc, ast.Call) and raise_stmt.exc.func.id == "NotImplementedError"


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.filename)
def test_check_fails_on_the_untouched_stub(capsys, tmp_path, exercise):
    code, _, _ = run(capsys, "start", str(exercise.number), "--dir", str(tmp_path))
    assert code == 0
    code, out, _ = run(capsys, "check", str(exercise.number), "--dir", str(tmp_path))
    assert code == 1
    assert "FAIL" in out and "not written yet" in out and "NotImplementedError" in out
    assert "PASS" not in out


# ---- correct solutions pass -----------------------------------------------------------------
def test_every_exercise_has_a_solution_here():
    assert sorted(SOLUTIONS) == [e.number for e in EXERCISES]


@pytest.mark.parametrize("number", sorted(SOLUTIONS))
def test_check_passes_on_a_correct_solution(capsys, tmp_path, number):
    write_solution(tmp_path, number, SOLUTIONS[number])
    code, out, _ = run(capsys, "check", str(number), "--dir", str(tmp_path))
    assert code == 0, out
    assert "FAIL" not in out and "checks passed" in out


# ---- wrong solutions fail, saying what differed ---------------------------------------------
WRONG = {
    "attention without the 1/sqrt(d) scale": (2, '''
        import torch

        def scaled_dot_product_attention(q, k, v, mask=None):
            scores = q @ k.transpose(-2, -1)
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            return weights @ v, weights
    ''', ["FAIL  matches minitransformer.nn.attention without a mask", "weights:", "expected", "got", "case 1:"]),
    "attention that returns the weights transposed": (2, '''
        import math
        import torch

        def scaled_dot_product_attention(q, k, v, mask=None):
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            return weights @ v, weights.transpose(-2, -1)
    ''', ["shape mismatch"]),
    "causal mask aligned top-left (breaks with a KV cache)": (3, '''
        import torch
        from minitransformer.nn import padding_bias

        def causal_mask(t_q, t_k):
            return torch.ones(t_q, t_k, dtype=torch.bool).tril()
    ''', ["PASS  padding_bias", "FAIL  causal_mask", "t_q=1, t_k=2"]),
    "padding bias of -inf": (3, '''
        import torch
        from minitransformer.nn import causal_mask

        def padding_bias(attention_mask):
            bias = torch.zeros(attention_mask.shape).masked_fill(attention_mask == 0, float("-inf"))
            return bias[:, None, None, :]
    ''', ["FAIL  padding_bias", "-inf", "finfo"]),
    "block with the norm on the wrong side": (4, '''
        def pre_ln_block(x, layer, causal=True):
            x = layer.self_attn_norm(x + layer.self_attn(x, is_causal=causal)[0])
            return layer.ffn_norm(x + layer.ffn(x))

        def post_ln_block(x, layer):
            raise NotImplementedError
    ''', ["FAIL  pre_ln_block, causal", "block output", "`post_ln_block` is not written yet"]),
    "top-k that changes the logits in place": (5, '''
        import torch

        def filter_top_k(logits, k):
            if k < logits.shape[-1]:
                kth = torch.topk(logits, k, dim=-1).values[..., -1:]
                logits[logits < kth] = float("-inf")
            return logits

        def filter_top_p(logits, p):
            raise NotImplementedError
    ''', ["modified in place"]),
    "MLM masking that ignores the generator": (6, '''
        from minitransformer.data import mask_tokens as _library

        def mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability=0.15,
                        generator=None):
            return _library(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability)
    ''', ["PASS  shapes", "FAIL  the same generator seed gives the same result", "generator="]),
    "MLM masking that always uses [MASK]": (6, '''
        import torch

        def mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability=0.15,
                        generator=None):
            special = torch.isin(input_ids, torch.tensor(list(special_token_ids)))
            selected = (torch.rand(input_ids.shape, generator=generator) < mlm_probability) & ~special
            labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
            return input_ids.masked_fill(selected, mask_token_id), labels
    ''', ["FAIL  rates match", "[MASK] / selected", "library"]),
    "MLM masking with a 70/15/15 split": (6, '''
        import torch

        def mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability=0.15,
                        generator=None):
            special = torch.isin(input_ids, torch.tensor(list(special_token_ids)))
            selected = (torch.rand(input_ids.shape, generator=generator) < mlm_probability) & ~special
            u = torch.rand(input_ids.shape, generator=generator)
            random_ids = torch.randint(0, vocab_size, input_ids.shape, generator=generator)
            ids = input_ids.clone()
            ids[selected & (u < 0.7)] = mask_token_id
            ids[selected & (u >= 0.7) & (u < 0.85)] = random_ids[selected & (u >= 0.7) & (u < 0.85)]
            return ids, torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    ''', ["FAIL  rates match", "[MASK] / selected"]),
    "MLM masking that selects special tokens": (6, '''
        import torch

        def mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability=0.15,
                        generator=None):
            selected = torch.rand(input_ids.shape, generator=generator) < mlm_probability
            labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
            return input_ids.masked_fill(selected, mask_token_id), labels
    ''', ["FAIL  shapes", "special token"]),
    "buckets without the direction split": (7, '''
        import math
        import torch

        def relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
            distance = relative_position.abs()
            max_exact = num_buckets // 2
            log_bucket = max_exact + (torch.log(distance.float().clamp(min=1) / max_exact)
                                      / math.log(max_distance / max_exact) * (num_buckets - max_exact)).long()
            return torch.where(distance < max_exact, distance, log_bucket.clamp(max=num_buckets - 1))
    ''', ["FAIL  bidirectional", "offsets in the wrong bucket", "offset -600: expected"]),
    "BPE merge that scans from the right": (1, '''
        from collections import Counter

        def most_frequent_pair(words):
            counts = Counter()
            for word, n in words.items():
                for pair in zip(word, word[1:]):
                    counts[pair] += n
            best = max(counts.values())
            return min(pair for pair, n in counts.items() if n == best)

        def merge_pair(word, pair, new_id):
            out, i = [], len(word) - 1
            while i >= 0:  # wrong direction: (7, 7, 7) becomes (7, 9)
                if i > 0 and (word[i - 1], word[i]) == tuple(pair):
                    out.append(new_id)
                    i -= 2
                else:
                    out.append(word[i])
                    i -= 1
            return tuple(reversed(out))
    ''', ["PASS  most_frequent_pair", "FAIL  merge_pair fuses every occurrence", "merged word: expected"]),
    "BPE pair choice without the tie rule": (1, '''
        from collections import Counter
        from minitransformer.tokenizers.bpe import _merge_in_word

        def most_frequent_pair(words):
            counts = Counter()
            for word, n in words.items():
                for pair in zip(word, word[1:]):
                    counts[pair] += n
            return max(sorted(counts, reverse=True), key=counts.get)  # ties go to the largest pair

        def merge_pair(word, pair, new_id):
            out = list(word)
            _merge_in_word(out, pair[0], pair[1], new_id)
            return tuple(out)
    ''', ["PASS  merge_pair", "FAIL  most_frequent_pair", "most frequent pair: expected"]),
    # found by writing learners' mistakes against every exercise: these four used to pass
    "top-p that keeps a token whose mass before it equals p": (5, '''
        import torch
        from minitransformer.generation import filter_top_k

        def filter_top_p(logits, p):
            if p >= 1.0:
                return logits.clone()
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            mass_before = torch.cumsum(probs, dim=-1) - probs
            remove_sorted = mass_before > p  # should be >= p: keep only while the mass before is < p
            remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
            return logits.masked_fill(remove, float("-inf"))
    ''', ["PASS  filter_top_k", "FAIL  filter_top_p", "p=0.5"]),
    "MLM random ids that can never be the last id": (6, '''
        import torch

        def mask_tokens(input_ids, vocab_size, mask_token_id, special_token_ids, mlm_probability, generator):
            ids, labels = input_ids.clone(), input_ids.clone()
            special = torch.isin(input_ids, torch.tensor(special_token_ids))
            selected = (torch.rand(ids.shape, generator=generator) < mlm_probability) & ~special
            labels[~selected] = -100
            u = torch.rand(ids.shape, generator=generator)
            ids[selected & (u < 0.8)] = mask_token_id
            random_ids = torch.randint(0, vocab_size - 1, ids.shape, generator=generator)  # misses vocab_size - 1
            where = selected & (u >= 0.8) & (u < 0.9)
            ids[where] = random_ids[where]
            return ids, labels
    ''', ["FAIL  random replacements come from the whole vocabulary", "never [11]"]),
    "relative position buckets as int32": (7, '''
        from minitransformer.nn import relative_position_bucket as library

        def relative_position_bucket(relative_position, bidirectional, num_buckets, max_distance):
            return library(relative_position, bidirectional, num_buckets, max_distance).int()
    ''', ["FAIL", "torch.long", "torch.int32"]),
    "attention that answers in float64": (2, '''
        import math
        import torch

        def scaled_dot_product_attention(q, k, v, mask=None):
            q, k, v = q.double(), k.double(), v.double()
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            weights = torch.softmax(scores, dim=-1)
            return weights @ v, weights
    ''', ["FAIL", "dtype mismatch: expected torch.float32, got torch.float64"]),
    "new rows of zeros": (8, '''
        import torch

        def grow_vocabulary(table, new_vocab_size):
            extra = max(new_vocab_size - table.shape[0], 0)
            return torch.cat([table[:new_vocab_size], table.new_zeros(extra, *table.shape[1:])])
    ''', ["FAIL  growing a matrix", "resized table", "FAIL  a new token scores the average"]),
    "shrinking that keeps the last rows": (8, '''
        from minitransformer.nn import resize_vocab_rows

        def grow_vocabulary(table, new_vocab_size):
            if new_vocab_size < table.shape[0]:
                return table[-new_vocab_size:].clone()
            return resize_vocab_rows(table, new_vocab_size).detach().clone()
    ''', ["PASS  growing a matrix", "FAIL  shrinking keeps the first rows", "new_vocab_size=7"]),
    "a bfloat16 table returned as float32": (8, '''
        import torch

        def grow_vocabulary(table, new_vocab_size):
            table = table.float()
            rows = [table[:new_vocab_size]]
            if new_vocab_size > table.shape[0]:
                rows.append(table.mean(dim=0).expand(new_vocab_size - table.shape[0], *table.shape[1:]))
            return torch.cat(rows)
    ''', ["PASS  shrinking", "FAIL  bfloat16", "expected dtype torch.bfloat16"]),
    "growing in place": (8, '''
        import torch

        def grow_vocabulary(table, new_vocab_size):
            mean = table.mean(dim=0)
            table[:] = table * 1.0001
            rows = [table[:new_vocab_size]]
            if new_vocab_size > table.shape[0]:
                rows.append(mean.expand(new_vocab_size - table.shape[0], *table.shape[1:]))
            return torch.cat(rows)
    ''', ["FAIL  growing a matrix", "modified in place"]),
    "a mean over every position, padding included": (9, '''
        def mean_pool(hidden, attention_mask):
            return hidden.mean(dim=1)
    ''', ["FAIL  equals minitransformer.embedding_search.mean_pool", "pooled vectors", "case 1:"]),
    "a mean that divides by zero for an empty row": (9, '''
        def mean_pool(hidden, attention_mask):
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1)
    ''', ["PASS  padding changes nothing", "FAIL  a row with no real token", "NaN"]),
    "RoPE on neighbouring pairs (2i, 2i+1), the paper's layout, not halves": (10, '''
        import torch

        def rotate(x, positions, base=10000.0):
            d = x.shape[-1]
            theta = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
            angles = positions[:, None].float() * theta
            cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
            even, odd = x[..., 0::2], x[..., 1::2]
            return torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1).flatten(-2)
    ''', ["FAIL  equals minitransformer's RotaryEmbedding", "rotated x", "case 1:"]),
    "RoPE turning the wrong way (by -φ)": (10, '''
        import torch

        def rotate(x, positions, base=10000.0):
            d = x.shape[-1]
            theta = base ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
            angles = positions[:, None].float() * theta
            cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
            first, second = x[..., : d // 2], x[..., d // 2:]
            return torch.cat([first * cos + second * sin, second * cos - first * sin], dim=-1)
    ''', ["FAIL  equals minitransformer's RotaryEmbedding", "rotated x"]),
    "a file that does not import": (2, '''
        def scaled_dot_product_attention(q, k, v, mask=None)
            return q
    ''', ["FAIL  importing", "SyntaxError", "line 2"]),
    # exit() used to end the checker with status 0, which means "all checks passed"
    "a file that exits while being imported": (2, '''
        import sys
        sys.exit(0)
    ''', ["FAIL  importing", "SystemExit"]),
    "a function that exits": (2, '''
        def scaled_dot_product_attention(q, k, v, mask=None):
            exit()
    ''', ["FAIL", "SystemExit"]),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_check_fails_on_a_wrong_solution_with_a_helpful_message(capsys, tmp_path, name):
    number, source, expected_phrases = WRONG[name]
    write_solution(tmp_path, number, source)
    code, out, _ = run(capsys, "check", str(number), "--dir", str(tmp_path))
    assert code == 1, out
    for phrase in expected_phrases:
        assert phrase in out, f"{phrase!r} missing from:\n{out}"


def test_check_reports_a_missing_function(capsys, tmp_path):
    write_solution(tmp_path, 3, "def causal_mask(t_q, t_k):\n    raise NotImplementedError\n")
    code, out, _ = run(capsys, "check", "3", "--dir", str(tmp_path))
    assert code == 1 and "has no function `padding_bias`" in out
