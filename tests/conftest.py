"""Shared test settings and fixtures."""
import pytest
import torch

import sslab

# One intra-op thread: deterministic reductions, and no OpenMP spin-wait slowdown when the cores are busy
# (with 2 threads on a loaded 2-core machine a tiny forward pass took ~4 s instead of ~15 ms).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """scikit-learn's digits (8 x 8, 1,797 images, 10 classes), loaded once per test process with its own cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
        return sslab.load_images("digits")

