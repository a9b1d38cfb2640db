"""The list of exercises: number, file name, title, the tutorial it belongs to, and its checks."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from minitransformer.exercises import checks
from minitransformer.exercises.checking import Check

STUBS = Path(__file__).parent / "stubs"


@dataclass(frozen=True)
class Exercise:
    """One exercise: the learner fills in ``stubs/<filename>`` and ``checks(module, path)`` judges it."""

    number: int
    name: str  # the file is ex<NN>_<name>.py
    title: str
    tutorial: str
    checks: Callable[[ModuleType, Path], list[Check]]

    @property
    def filename(self) -> str:
        return f"ex{self.number:02d}_{self.name}.py"

    @property
    def stub_path(self) -> Path:
        return STUBS / self.filename


EXERCISES: tuple[Exercise, ...] = (
    Exercise(1, "bpe_merge", "BPE: find the most frequent pair and merge it", "01_tokenization.py",
             checks.checks_bpe_merge),
    Exercise(2, "attention", "scaled dot-product attention: softmax(QKᵀ/√d)V", "02_attention.py",
             checks.checks_attention),
    Exercise(3, "masks", "the causal mask and the padding bias", "02_attention.py", checks.checks_masks),
    Exercise(4, "transformer_block", "a Transformer block, pre-LN (GPT-2) and post-LN (BERT)", "03_gpt.py",
             checks.checks_transformer_block),
    Exercise(5, "sampling_filters", "top-k and top-p (nucleus) filtering for sampling", "03_gpt.py",
             checks.checks_sampling_filters),
    Exercise(6, "mlm_masking", "BERT's MLM masking: 15% selected, 80/10/10", "04_bert.py",
             checks.checks_mlm_masking),
    Exercise(7, "relative_position", "T5's relative position buckets", "05_t5.py",
             checks.checks_relative_position),
    Exercise(8, "grow_vocabulary", "new tokens: grow the embedding table, new rows at the mean",
             "01_tokenization.py", checks.checks_grow_vocabulary),
    Exercise(9, "mean_pool", "one vector per sentence: the mean of its real tokens", "04_bert.py",
             checks.checks_mean_pool),
    Exercise(10, "rotary", "RoPE: turn queries and keys by their position", "07_positions.py",
             checks.checks_rotary),
)


def get_exercise(number: int) -> Exercise:
    """The exercise with this number; ValueError listing the valid numbers otherwise."""
    for exercise in EXERCISES:
        if exercise.number == number:
            return exercise
    raise ValueError(f"there is no exercise {number}; choose one of "
                     f"{', '.join(str(e.number) for e in EXERCISES)} (see `minitransformer exercises list`)")
