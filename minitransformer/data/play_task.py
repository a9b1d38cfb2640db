"""Play classification: which play is a short passage from? A fine-tuning task for BERT.

Sequence classification is how BERT is fine-tuned for GLUE-style tasks (Devlin et al. 2019, §4.1):
a linear layer on the final ``[CLS]`` vector. Here the inputs are passages of a few consecutive
spoken lines (speaker names and stage directions removed) and the label is the play.

Neighbouring lines share names and topics, so a random split would leak: the test set is made of
whole contiguous blocks of each play, and the train passage next to a test block is dropped.

Two baselines put a fine-tuned model's accuracy in context: the majority class, and a multinomial
naive Bayes classifier on bags of words (Manning et al., Introduction to Information Retrieval, §13.2).
"""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from minitransformer.checks import check_int, check_number
from minitransformer.data.corpus import dialogue_lines, load_plays


@dataclass(frozen=True)
class ClassificationTask:
    """``labels[i]`` is the name of class i; ``train``/``test`` hold ``(text, class index)``."""

    labels: list[str]
    train: list[tuple[str, int]]
    test: list[tuple[str, int]]


def make_play_classification(
    titles: Sequence[str] | None = None,
    lines_per_passage: int = 4,
    n_blocks: int = 10,
    test_blocks: int = 2,
    seed: int = 0,
) -> ClassificationTask:
    """Passages of ``lines_per_passage`` consecutive spoken lines, labelled by play.

    Each play's passages (non-overlapping, in order) are cut into ``n_blocks`` contiguous blocks;
    ``test_blocks`` of them, drawn with ``random.Random(seed)``, form that play's test passages. A train
    passage adjacent to a test passage is dropped, so no train passage touches a test one.
    ``titles`` picks plays of ``load_plays()`` (default: all, in corpus order).
    """
    plays = load_plays()
    titles = list(plays) if titles is None else list(titles)
    unknown = [t for t in titles if t not in plays]
    if unknown:
        raise ValueError(f"unknown play titles {unknown}; the embedded plays are {list(plays)}")
    if len(set(titles)) < 2:
        raise ValueError(f"classification needs at least 2 different plays, got {titles}")
    if len(set(titles)) != len(titles):  # one play under two labels: the same passages in two classes
        raise ValueError(f"each play may be listed once, got {titles}")
    check_int("lines_per_passage", lines_per_passage, 1)
    if not 1 <= test_blocks < n_blocks:
        raise ValueError(f"need 1 <= test_blocks < n_blocks, got test_blocks={test_blocks}, n_blocks={n_blocks}")

    rng = random.Random(seed)
    train: list[tuple[str, int]] = []
    test: list[tuple[str, int]] = []
    for label, title in enumerate(titles):
        lines = dialogue_lines(plays[title])
        passages = [" ".join(lines[i:i + lines_per_passage])
                    for i in range(0, len(lines) - lines_per_passage + 1, lines_per_passage)]
        n = len(passages)
        if n < n_blocks:  # some blocks would be empty, and the test set could be too
            raise ValueError(f"{title!r} has {n} passages of {lines_per_passage} lines, fewer than n_blocks={n_blocks}; "
                             "use shorter passages or fewer blocks")
        chosen = set(rng.sample(range(n_blocks), test_blocks))
        in_test = [j * n_blocks // n in chosen for j in range(n)]
        for j, text in enumerate(passages):
            if in_test[j]:
                test.append((text, label))
            elif not (j > 0 and in_test[j - 1]) and not (j + 1 < n and in_test[j + 1]):
                train.append((text, label))
    return ClassificationTask(titles, train, test)


# ---- baselines -------------------------------------------------------------------------------------

def bag_of_words(text: str) -> list[str]:
    """Lower-cased words (letters and inner apostrophes): the features of the baseline."""
    return re.findall(r"[a-z]+(?:'[a-z]+)*", text.lower())


def majority_baseline(task: ClassificationTask) -> float:
    """Test accuracy of always predicting the most frequent training label."""
    counts = np.bincount([y for _, y in task.train], minlength=len(task.labels))
    return float(np.mean([y == counts.argmax() for _, y in task.test]))


class NaiveBayes:
    """Multinomial naive Bayes with add-``alpha`` smoothing, on bags of words.

    P(class | words) ∝ P(class) · Π_w P(w | class)^count(w); estimated by counting, scored in logs.
    Words not seen in training are ignored.
    """

    def __init__(self, alpha: float = 1.0):
        self.alpha = check_number("alpha", alpha, 0, low_open=True)  # NaN would predict class 0 always

    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> NaiveBayes:
        """Count words per class; ``labels`` are class indices 0..C-1."""
        if not texts or len(texts) != len(labels):
            raise ValueError(f"fit needs as many labels as texts, and at least one; got {len(texts)} and {len(labels)}")
        self.vocab = {w: i for i, w in enumerate(sorted({w for t in texts for w in bag_of_words(t)}))}
        n_classes = max(labels) + 1
        counts = np.zeros((n_classes, len(self.vocab)))                 # (C, V)
        for text, y in zip(texts, labels, strict=True):
            np.add.at(counts[y], [self.vocab[w] for w in bag_of_words(text)], 1)
        smoothed = counts + self.alpha
        self.log_likelihood = np.log(smoothed / smoothed.sum(axis=1, keepdims=True))   # (C, V)
        self.log_prior = np.log(np.bincount(labels, minlength=n_classes) / len(labels))  # (C,)
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """The most probable class index of each text, (N,)."""
        if not hasattr(self, "log_prior"):
            raise ValueError("NaiveBayes.predict before fit: call fit(texts, labels) first")
        scores = np.empty((len(texts), len(self.log_prior)))            # (N, C)
        for row, text in enumerate(texts):
            word_ids = [self.vocab[w] for w in bag_of_words(text) if w in self.vocab]
            scores[row] = self.log_likelihood[:, word_ids].sum(axis=1) + self.log_prior
        return scores.argmax(axis=1)


def naive_bayes_baseline(task: ClassificationTask, alpha: float = 1.0) -> float:
    """Test accuracy of ``NaiveBayes`` trained on the training passages."""
    model = NaiveBayes(alpha).fit([t for t, _ in task.train], [y for _, y in task.train])
    predictions = model.predict([t for t, _ in task.test])
    return float(np.mean(predictions == np.array([y for _, y in task.test])))
