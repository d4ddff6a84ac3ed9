"""Shared test settings."""
import torch

# One intra-op thread: deterministic reductions, and no OpenMP spin-wait slowdown when the cores are busy
# (with 2 threads on a loaded 2-core machine a tiny forward pass took ~4 s instead of ~15 ms).
torch.set_num_threads(1)
