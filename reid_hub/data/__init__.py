"""Data in: `tables` (metadata.csv folders, wildlife-datasets, Hugging Face datasets, identity splits, training
datasets and samplers, embedding Parquet files), `imaging` (image loading and a model's preprocessing), `boxes`
(box geometry), `union_find` (disjoint sets: which rows belong together), `atomic` (files written whole or not at
all), `synthetic` (generated coat-pattern animals for demos and tests, CC0), `camtrap_package` (Camtrap DP
packages read as a collection of animal crops and written back with individualID) and `camtrap_simulation` (a
package made from labelled images, with synthetic deployments and times).
"""
