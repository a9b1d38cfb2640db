"""Output heads: small modules that turn an encoder's or decoder's hidden states into predictions.

They know nothing of a particular family; a model decides which ones it needs:

- ``Pooler``: one vector per sequence from its first token (BERT's ``[CLS]``), dense + tanh.
- ``MLMHead``: masked-language-model predictions over the vocabulary (BERT, RoBERTa, ELECTRA's
  generator); the output matrix is the token embedding's (weights tied).
- ``LMHead``: a plain projection to the vocabulary, tied or not (GPT-style next-token logits).
- ``ClassificationHead``: dropout + linear on a pooled vector (next-sentence prediction,
  sequence classification).
- ``DiscriminatorHead``: ELECTRA's replaced-token detection, one logit per position.
"""
from __future__ import annotations

import torch
from torch import nn

from minitransformer.nn.dropout import Dropout
from minitransformer.nn.embeddings import padded_vocab_logits, vocab_logits
from minitransformer.nn.feedforward import activation_fn
from minitransformer.nn.norms import LayerNorm


class Pooler(nn.Module):
    """The first position's hidden state through dense + tanh (Devlin et al. 2019 §3, "C").

    Fine-tuning classifiers and BERT's next-sentence prediction read this one vector per sequence.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, C)
        return torch.tanh(self.dense(hidden[:, 0]))


class MLMHead(nn.Module):
    """Masked-LM predictions: dense + activation + LayerNorm, then the tied output matrix + a bias.

    Devlin et al. 2019 §3.1 / App. A.1; the dense layer maps ``d_model -> d_embed`` so that it also
    serves ELECTRA's generator, whose embeddings are narrower than its hidden states (Clark et al.
    2020 §3.2). The output matrix is not a parameter of this head: the caller passes the token
    embedding's weight (V, d_embed), so input and output embeddings are one tensor (Press & Wolf 2017).
    """

    logits_multiple_of: int | None = None  # padded_vocab_logits' padding: None = 8 on a GPU, 1 on the CPU

    def __init__(self, d_model: int, d_embed: int, vocab_size: int, activation: str = "gelu",
                 norm_eps: float = 1e-12) -> None:
        super().__init__()
        self.activation = activation
        self.dense = nn.Linear(d_model, d_embed)
        self.norm = LayerNorm(d_embed, eps=norm_eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))  # one output bias per vocabulary entry

    def forward(self, hidden: torch.Tensor, embedding_weight: torch.Tensor, padded: bool = False) -> torch.Tensor:
        """hidden (..., C), embedding_weight (V, E) -> logits (..., V).

        On a GPU the product runs with the vocabulary padded to a multiple of 8 (``padded_vocab_logits``:
        fast kernels); ``padded=True`` returns those (..., V + pad) scores, whose pad columns a softmax
        or cross-entropy gives no probability and no gradient, instead of a view of the first V.
        """
        h = self.norm(activation_fn(self.activation, self.dense(hidden)))  # (..., E)
        scores = padded_vocab_logits(h, embedding_weight, self.bias, self.logits_multiple_of)  # (..., V + pad)
        return scores if padded else scores[..., :embedding_weight.shape[0]]


class LMHead(nn.Module):
    """Hidden states -> vocabulary logits with one linear map (Radford et al. 2018 §3.1).

    With ``tied_weight`` (the token embedding's weight) the head owns no matrix of its own and
    reads the embedding at call time; otherwise it has its own ``weight`` (V, C).
    """

    def __init__(self, d_model: int, vocab_size: int, bias: bool = False,
                 tied_weight: nn.Parameter | None = None) -> None:
        super().__init__()
        if tied_weight is not None and tuple(tied_weight.shape) != (vocab_size, d_model):
            raise ValueError(f"tied_weight must have shape ({vocab_size}, {d_model}), got {tuple(tied_weight.shape)}")
        self.tied = tied_weight is not None
        self.weight = tied_weight if tied_weight is not None else nn.Parameter(torch.empty(vocab_size, d_model))
        if tied_weight is None:
            nn.init.normal_(self.weight, std=0.02)
        self.bias = nn.Parameter(torch.zeros(vocab_size)) if bias else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (..., C) -> (..., V)
        return vocab_logits(hidden, self.weight, self.bias)  # F.linear; on a GPU through a padded vocabulary


class ClassificationHead(nn.Module):
    """Dropout + one linear layer on a pooled vector: (B, C) -> (B, n_classes).

    BERT's next-sentence prediction is this with two classes and no dropout (Devlin et al. 2019
    §3.1 Task #2); fine-tuning for a sequence-level task adds dropout (§4.1, App. A.3).
    """

    def __init__(self, d_model: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
            raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
        self.dropout = Dropout(dropout)
        self.classifier = nn.Linear(d_model, n_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:  # (B, C) -> (B, n_classes)
        return self.classifier(self.dropout(pooled))


class DiscriminatorHead(nn.Module):
    """ELECTRA's replaced-token detection: is each token original (logit < 0) or replaced (> 0)?

    dense + activation + a linear map to one logit per position (Clark et al. 2020 §2).
    """

    def __init__(self, d_model: int, activation: str = "gelu") -> None:
        super().__init__()
        self.activation = activation
        self.dense = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T)
        return self.out(activation_fn(self.activation, self.dense(hidden))).squeeze(-1)
