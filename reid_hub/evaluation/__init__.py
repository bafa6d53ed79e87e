"""Evaluation: `metrics` (retrieval, open-set, clustering, IDF1), `scorers` (a table of images -> a similarity
matrix: embeddings, local matches, the fused Ranker) and `runner` (methods and baselines on one split, results
files and plots).
"""
