"""Pretraining: corpus -> tokens -> objective -> batches -> model -> loss -> optimizer -> checkpoints.

- ``config.py``: ``TrainConfig``, every setting of a run; ``presets.py``: sized defaults per family.
- ``tokens.py``: tokenize once into a memory-mapped ``.bin`` cache next to the run.
- ``batches.py``: the family-specific part (GPT windows, BERT MLM + NSP, T5 span corruption).
- ``trainer.py``: the one training loop (AdamW, warm-up + cosine, clipping, accumulation, mixed
  precision, evaluation, samples, NaN guard).
- ``checkpoint.py``: crash-safe checkpoints and exact resume; ``metrics.py``: JSONL/CSV/plot.
- ``distributed.py``: torchrun + DistributedDataParallel; ``commands.py``: the command line.
"""
from minitransformer.training.config import TrainConfig
from minitransformer.training.presets import PRESETS, preset
from minitransformer.training.trainer import Trainer, TrainingDiverged, TrainResult, load_run, train

__all__ = ["TrainConfig", "PRESETS", "preset", "Trainer", "TrainResult", "TrainingDiverged", "train", "load_run"]
