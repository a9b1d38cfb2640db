"""Pretraining: corpus -> tokens -> objective -> batches -> model -> loss -> optimizer -> checkpoints;
and fine-tuning, the same loop from a trained model on (input, target) pairs::

    from minitransformer.training import preset, train
    train(preset("gpt", "tiny"), "runs/gpt")                                              # pretrain
    train(preset("t5", "cpu", finetune=True, corpus="sql", init_from="runs/t5"), "runs/t5-sql")  # fine-tune

- ``config.py``: ``TrainConfig``, every setting of a run; ``presets.py``: sized defaults per family.
- ``tokens.py``: tokenize once into a memory-mapped ``.bin`` cache next to the run.
- ``batches.py``: the family-specific part (GPT windows, BERT MLM + NSP, T5 span corruption; and
  for fine-tuning T5 text-to-text, GPT prompt-completion, BERT classification).
- ``trainer.py``: the one training loop (AdamW, warm-up + cosine, clipping, accumulation, mixed
  precision, evaluation, samples, NaN guard).
- ``checkpoint.py``: crash-safe checkpoints and exact resume; ``metrics.py``: JSONL/CSV/plot.
- ``distributed.py``: torchrun + DistributedDataParallel; ``commands.py``: the command line.
"""
from minitransformer.training.config import TrainConfig
from minitransformer.training.presets import PRESETS, preset
from minitransformer.training.trainer import Trainer, TrainingDiverged, TrainResult, load_run, train

__all__ = ["TrainConfig", "PRESETS", "preset", "Trainer", "TrainResult", "TrainingDiverged", "train", "load_run"]
