"""Data in: `tables` (metadata.csv folders, wildlife-datasets, Hugging Face datasets, identity splits, training
datasets and samplers, embedding Parquet files), `imaging` (image loading and a model's preprocessing), `boxes`
(box geometry) and `synthetic` (generated coat-pattern animals for demos and tests, CC0).
"""
