"""T5 span corruption (`sslab.views.text.span_corruption`): the reference algorithm's exact input and target lengths,
noise rate and span count, spans' mean length, sentinel order, lossless reconstruction, determinism."""
import numpy as np
import pytest
import torch

from sslab.errors import SslabError
from sslab.views.text import span_corruption, t5_lengths

SENTINELS = list(range(999, 899, -1))  # <extra_id_0> = 999, <extra_id_1> = 998, ... as T5 numbers them
EOS = 1


def _reference_lengths(inputs_length, density=0.15, mean=3.0):
    """T5's compute_input_and_target_lengths, transcribed from its description (raw tokens -> lengths)."""
    def f(n):
        noise = int(round(n * density))
        spans = int(round(noise / mean))
        return n - noise + spans + 1, noise + spans + 1
    n = inputs_length
    while f(n + 1)[0] <= inputs_length:
        n += 1
    return n, f(n)[1]


@pytest.mark.parametrize("inputs_length", [8, 32, 64, 128, 512])
def test_lengths_are_the_reference_algorithms(inputs_length):
    n, t = t5_lengths(inputs_length)
    assert (n, t) == _reference_lengths(inputs_length)
    if round(round(n * 0.15) / 3) == 0:
        return  # under ~10 tokens the reference's lengths count no span while its mask makes one: so do we
    out = span_corruption(torch.randint(5, 800, (3, n)), SENTINELS, EOS, generator=torch.Generator().manual_seed(0))
    assert out["input_ids"].shape == (3, inputs_length) and out["labels"].shape == (3, t)
    assert t5_lengths(512) == (568, 114)  # the T5 pretraining setting: 568 raw tokens -> 512 inputs, 114 targets


def _reconstruct(inp, tgt):
    """The original row from inputs and targets: each sentinel in the input replaced by what follows it in the
    targets."""
    spans, cur = {}, None
    for t in tgt[:-1]:
        if t in SENTINELS:
            cur = t
            spans[cur] = []
        else:
            spans[cur].append(t)
    out = []
    for t in inp[:-1]:
        out += spans[t] if t in SENTINELS else [t]
    return out


def test_noise_rate_span_count_order_and_reconstruction():
    n, _ = t5_lengths(128)
    ids = torch.randint(5, 800, (64, n), generator=torch.Generator().manual_seed(1))
    out = span_corruption(ids, SENTINELS, EOS, generator=torch.Generator().manual_seed(2))
    noise = out["noise"]
    assert (noise.sum(1) == round(n * 0.15)).all()
    n_spans = round(round(n * 0.15) / 3)
    starts = noise[:, 1:] & ~noise[:, :-1]
    assert (starts.sum(1) + noise[:, 0].long() == n_spans).all()
    assert not noise[:, 0].any() and noise[:, -1].all()  # a kept stretch first, a noise span last
    for r in range(64):
        inp, tgt = out["input_ids"][r].tolist(), out["labels"][r].tolist()
        assert inp[-1] == EOS and tgt[-1] == EOS
        assert [t for t in inp if t in SENTINELS] == SENTINELS[:n_spans] == [t for t in tgt if t in SENTINELS]
        assert tgt[0] == SENTINELS[0]
        assert _reconstruct(inp, tgt) == ids[r].tolist()


def test_mean_span_length_and_positions_are_random():
    n, _ = t5_lengths(512)
    out = span_corruption(torch.randint(5, 800, (200, n)), SENTINELS, EOS, generator=torch.Generator().manual_seed(0))
    noise = out["noise"]
    spans = (noise[:, 1:] & ~noise[:, :-1]).sum().item()
    assert noise.sum().item() / spans == pytest.approx(3.0, rel=0.05)
    assert noise[:, 1:-1].float().mean(0).std().item() < 0.06  # no position favoured beyond the fixed ends
    rate = noise.float().mean(0)[n // 4: 3 * n // 4]
    assert rate.mean().item() == pytest.approx(0.15, abs=0.02)


def test_seeded_generator_repeats_and_bad_arguments():
    ids = torch.randint(5, 800, (4, 40))
    a = span_corruption(ids, SENTINELS, EOS, generator=torch.Generator().manual_seed(7))
    b = span_corruption(ids, SENTINELS, EOS, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(SslabError, match="sentinel"):
        span_corruption(torch.randint(5, 800, (2, 600)), SENTINELS[:3], EOS)
    with pytest.raises(SslabError, match="noise_density"):
        span_corruption(ids, SENTINELS, EOS, noise_density=1.5)
    with pytest.raises(SslabError, match="inputs_length"):
        t5_lengths(2)
