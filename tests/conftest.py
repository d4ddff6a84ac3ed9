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



@pytest.fixture(autouse=True)
def _no_local_encoder(request, monkeypatch):
    """Text studies in tests run without the local sentence encoder that a study finds by default (its rows and its
    continued pretraining cost minutes a study); tests marked `local_encoder` keep it (test_text_defaults, and the
    --from tests name it themselves)."""
    if request.node.get_closest_marker("local_encoder") is None:
        monkeypatch.setattr("sslab.methods.text.LOCAL_ENCODER_PACKAGES", ())
