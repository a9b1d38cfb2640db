"""Sequence-classification fine-tuning: a tiny BERT learns a small synthetic task; bad input is refused."""
from __future__ import annotations

import random

import pytest
import torch

from minitransformer.finetune import (
    FinetuneConfig,
    SequenceClassifier,
    accuracy,
    finetune_classifier,
    predict,
)
from minitransformer.models.bert import Bert
from minitransformer.models.config import BertConfig
from minitransformer.tokenizers import WordPieceTokenizer

TOPICS = [["sword", "battle", "king", "crown", "army"],
          ["love", "heart", "kiss", "sweet", "rose"],
          ["storm", "sea", "ship", "island", "wave"]]
FILLER = ["the", "a", "and", "of", "my", "is"]


def tokenizer() -> WordPieceTokenizer:
    return WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + FILLER + sum(TOPICS, []))


def examples(n: int, seed: int) -> list[tuple[str, int]]:
    """Sentences of filler words with one or two words of the class's topic at random places."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.randrange(len(TOPICS))
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 9))]
        for _ in range(rng.randint(1, 2)):
            words.insert(rng.randrange(len(words) + 1), rng.choice(TOPICS[label]))
        out.append((" ".join(words), label))
    return out


def tiny_bert(**overrides) -> Bert:
    torch.manual_seed(0)
    return Bert(BertConfig.preset("tiny", vocab_size=tokenizer().vocab_size, max_seq_len=32, dropout=0.1,
                                  mlm_head=False, nsp_head=False, **overrides))


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_finetuning_learns_a_small_task(pooling):
    tok = tokenizer()
    train, test = examples(240, seed=0), examples(60, seed=1)
    model = SequenceClassifier(tiny_bert(), n_classes=3, pooling=pooling)
    before = accuracy(model, tok, test)
    result = finetune_classifier(model, tok, train, test, FinetuneConfig(lr=2e-3, batch_size=16, epochs=4))
    assert result.steps == 4 * 15
    assert result.test_accuracy >= 0.95 > before
    assert sum(result.train_losses[-10:]) / 10 < 0.5 * result.train_losses[0]
    assert predict(model, tok, ["the sword and the king"]).tolist() == [0]


def test_max_steps_and_time_budget_stop_training():
    tok = tokenizer()
    model = SequenceClassifier(tiny_bert(), n_classes=3)
    result = finetune_classifier(model, tok, examples(64, 0), config=FinetuneConfig(max_steps=3, batch_size=8))
    assert result.steps == 3 and result.test_accuracy is None
    result = finetune_classifier(model, tok, examples(64, 0), config=FinetuneConfig(time_budget_s=0.0, batch_size=8))
    assert result.steps == 1


def test_bad_input():
    tok = tokenizer()
    with pytest.raises(ValueError, match="pooler"):
        SequenceClassifier(tiny_bert(pooler=False), n_classes=3, pooling="cls")
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(tiny_bert(), n_classes=3, pooling="max")
    with pytest.raises(ValueError, match="n_classes"):
        SequenceClassifier(tiny_bert(), n_classes=0)
    model = SequenceClassifier(tiny_bert(), n_classes=3)
    with pytest.raises(ValueError, match=r"training labels must be in \[0, 3\)"):
        finetune_classifier(model, tok, [("the king", 3)])
    with pytest.raises(TypeError, match="pairs"):
        finetune_classifier(model, tok, [("the king", "war")])
    with pytest.raises(ValueError, match="no training examples"):
        finetune_classifier(model, tok, [])
    with pytest.raises(ValueError, match="lr"):
        FinetuneConfig(lr=0)
    # every example is checked, not the first: 1.7 used to train as class 1, a test label 7 to count as a miss
    with pytest.raises(TypeError, match="training examples"):
        finetune_classifier(model, tok, [("the king", 0), ("the queen", 1.7)])
    with pytest.raises(ValueError, match=r"test labels must be in \[0, 3\)"):
        finetune_classifier(model, tok, [("the king", 0)], test=[("the queen", 7)])
    for bad in (dict(grad_clip=-1.0), dict(grad_clip=0.0), dict(lr=float("inf")), dict(epochs=float("inf")),
                dict(time_budget_s=-1.0), dict(max_steps=2.5), dict(weight_decay=float("nan"))):
        with pytest.raises(ValueError, match=next(iter(bad))):  # a negative clip used to flip the gradients
            FinetuneConfig(**bad)
    with pytest.raises(ValueError, match="batch_size"):  # -1 returned uninitialised memory as predictions
        predict(model, tok, ["the king"], batch_size=-1)
    with pytest.raises(TypeError, match="list of strings"):  # a str was read as 8 one-letter texts
        predict(model, tok, "the king")
    ids = torch.tensor([[2, 5, 3]])
    with pytest.raises(ValueError, match="labels"):
        model(ids, labels=torch.tensor([5]))


def test_learning_rate_warms_up_then_decays_to_zero():
    from minitransformer.finetune import lr_factor

    factors = [lr_factor(step / 100, 0.1, 0.01) for step in range(100)]
    peak = max(range(100), key=factors.__getitem__)
    assert peak == 10 and factors[peak] == 1.0
    assert all(a < b for a, b in zip(factors[:10], factors[1:11], strict=True))  # warm-up
    assert all(a > b for a, b in zip(factors[10:-1], factors[11:], strict=True))  # decay
    assert 0 < factors[0] < 0.2 and 0 < factors[-1] < 0.02 and lr_factor(1.0, 0.1, 0.01) == 0.0
