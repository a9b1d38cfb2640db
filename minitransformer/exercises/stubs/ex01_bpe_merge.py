"""Exercise 1: one merge step of byte-pair encoding (BPE).

Tutorial: tutorials/01_tokenization.py. Paper: Sennrich et al. 2016, "Neural Machine Translation of
Rare Words with Subword Units", §3.2 (the merge loop); GPT-2 (Radford et al. 2019, §2.2) runs it on
bytes.

BPE training starts with every word spelled as single symbols and repeats one step:

    1. count every pair of *adjacent* symbols over all words (a word that occurs n times counts n times);
    2. fuse the most frequent pair into one new symbol everywhere it occurs.

Here a symbol is an integer id and a word is a tuple of ids, so ``"hello"`` might be
``(104, 101, 108, 108, 111)``. Write the two halves of the step; the checker drives the loop
(it picks the new ids) and compares the merges you learn with ``minitransformer``'s own trainer.

When you are done:   minitransformer exercises check 1
"""
from __future__ import annotations


def most_frequent_pair(words: dict[tuple[int, ...], int]) -> tuple[int, int]:
    """The adjacent pair of symbols that occurs most often, counting each word ``count`` times.

    Args:
        words: ``{word: count}``; each word is a tuple of symbol ids. At least one word has two
            or more symbols.

    Returns:
        ``(a, b)``: the pair with the highest total count. Ties go to the *smallest* pair,
        comparing ``(a, b)`` as a tuple (so ``(3, 9)`` beats ``(4, 1)``): the rule of Hugging Face
        ``tokenizers`` and of ``minitransformer``.

    Example:
        ``{(1, 2, 3): 2, (2, 3): 5}`` -> pairs (1, 2): 2, (2, 3): 2 + 5 = 7 -> ``(2, 3)``.

    Hints:
        - ``zip(word, word[1:])`` walks over the adjacent pairs of one word.
        - A word like ``(7, 7, 7)`` holds the pair ``(7, 7)`` twice; count it twice.
        - ``collections.Counter`` is handy; ``min`` over the pairs with the best count breaks ties.
    """
    raise NotImplementedError("count adjacent pairs over all words and return the most frequent one")


def merge_pair(word: tuple[int, ...], pair: tuple[int, int], new_id: int) -> tuple[int, ...]:
    """Replace every occurrence of ``pair`` in ``word`` by the single symbol ``new_id``.

    Scan left to right; after a merge, continue *after* the two merged symbols, so
    ``merge_pair((7, 7, 7), (7, 7), 9) == (9, 7)`` (not ``(7, 9)``, and not ``(9, 9)``).

    Args:
        word: a tuple of symbol ids.
        pair: ``(a, b)``, the two symbols to fuse.
        new_id: the id of the fused symbol.

    Returns:
        the new word, a tuple (shorter by one for each merge made; unchanged if ``pair`` is absent).

    Example:
        ``merge_pair((1, 2, 3, 1, 2), (1, 2), 10) == (10, 3, 10)``
    """
    raise NotImplementedError("walk through the word and fuse each occurrence of the pair")
