"""Training the embedding model: `loop` (the one training loop: sub-center ArcFace, fine-tuning, WiSE-FT,
distillation, resumable checkpoints), `losses`, `trunk_cache` (cached feature maps of a frozen trunk), `ddp`
(several processes: torchrun) and `ray_trainer` (Ray Train). Nothing here imports the command line.
"""
