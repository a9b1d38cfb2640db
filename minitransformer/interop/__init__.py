"""Converting to and from Hugging Face ``transformers`` checkpoints, and reading/writing model folders.

- ``files.py``: safe model folders (config.json + model.safetensors), strict loading with clear errors.
- ``gpt2.py``, ``bert.py``, ``t5.py``: one-to-one tensor mappings per family.
- ``hf.py``: ``from_hf`` / ``to_hf_state_dict`` / ``to_hf_model`` for any family.
"""
