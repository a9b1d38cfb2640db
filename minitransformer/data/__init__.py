"""Data for pretraining and fine-tuning: corpora, the three pretraining objectives, offline tasks.

- ``corpus``: the embedded Shakespeare corpus (``load_corpus("shakespeare")``, ``load_plays()``),
  a user's files (``load_corpus(path)``), and documents / sentences / spoken lines from text.
- ``masking``: BERT's masked language modelling corruption (``mask_tokens``).
- ``nsp``: BERT's next-sentence-prediction pairs (``make_nsp_pairs``, ``frame_pair``, ``nsp_batch``).
- ``span_corruption``: T5's span corruption (``span_corruption``, ``reconstruct``, fixed-length batches).
- ``sql_task``, ``translation_task``, ``play_task``: offline fine-tuning tasks with their metrics.

Everything here works on plain types (str, lists of ids, tensors); no tokenizer is imported.
"""
from minitransformer.data.corpus import (
    SHAKESPEARE,
    dialogue_lines,
    load_corpus,
    load_plays,
    read_text_file,
    split_documents,
    split_sentences,
)
from minitransformer.data.masking import IGNORE_INDEX, mask_tokens, wordpiece_word_starts
from minitransformer.data.nsp import frame_pair, make_nsp_pairs, nsp_batch, truncate_pair
from minitransformer.data.play_task import (
    ClassificationTask,
    NaiveBayes,
    majority_baseline,
    make_play_classification,
    naive_bayes_baseline,
)
from minitransformer.data.span_corruption import (
    compute_span_corruption_lengths,
    random_spans_noise_mask,
    reconstruct,
    span_corruption,
    span_corruption_batch,
)
from minitransformer.data.sql_task import (
    SQL_PREFIX,
    SqlDatabase,
    SqlTask,
    execution_match,
    make_database,
    make_sql_task,
)
from minitransformer.data.tasks import TextPair, TextToTextTask
from minitransformer.data.translation_task import PIG_LATIN_PREFIX, make_translation_task, pig_latin

__all__ = [
    "SHAKESPEARE", "load_corpus", "load_plays", "read_text_file", "split_documents", "split_sentences",
    "dialogue_lines",
    "IGNORE_INDEX", "mask_tokens", "wordpiece_word_starts",
    "make_nsp_pairs", "frame_pair", "nsp_batch", "truncate_pair",
    "span_corruption", "reconstruct", "random_spans_noise_mask", "compute_span_corruption_lengths",
    "span_corruption_batch",
    "TextPair", "TextToTextTask",
    "SQL_PREFIX", "SqlDatabase", "SqlTask", "make_database", "make_sql_task", "execution_match",
    "PIG_LATIN_PREFIX", "pig_latin", "make_translation_task",
    "ClassificationTask", "NaiveBayes", "make_play_classification", "majority_baseline", "naive_bayes_baseline",
]
