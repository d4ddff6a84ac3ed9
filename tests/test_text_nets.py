"""Text networks: HF models built from configs, trunks, pooling, safetensors round-trip, named sizes."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from sslab.errors import SslabError
from sslab.nets.text import TEXT_SIZES, TextEncoder, build_text_model, pool, text_base

V, T, PAD = 50, 16, 0
ARCHS = ("bert", "roberta", "gpt2")


def _model(arch, size="tiny", **kw):
    torch.manual_seed(0)
    return build_text_model(arch, size, vocab_size=V, max_len=T, pad_id=PAD, bos_id=1, eos_id=2, **kw).eval()


def _batch(lengths, width=T, seed=0):
    """Right-padded random token ids (ids >= 3) with their attention mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), width), PAD)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(3, V, (n,), generator=g)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


def test_unknown_size_is_one_line_listing_sizes():
    with pytest.raises(SslabError) as e:
        build_text_model("bert", "huge", V, T, PAD)
    msg = str(e.value)
    assert "\n" not in msg and all(name in msg for name in TEXT_SIZES)
    with pytest.raises(SslabError, match="architecture"):
        build_text_model("xlnet", "tiny", V, T, PAD)
    with pytest.raises(SslabError, match="n_heads"):
        build_text_model("bert", {"n_layers": 1, "n_heads": 3, "hidden": 32, "intermediate": 64}, V, T, PAD)
    with pytest.raises(SslabError, match="keys"):
        build_text_model("bert", {"n_layers": 1, "hidden": 32}, V, T, PAD)
    with pytest.raises(SslabError, match="no_such_field"):
        build_text_model("gpt2", "tiny", V, T, PAD, no_such_field=1)
    with pytest.raises(SslabError, match="pad_id"):
        build_text_model("bert", "tiny", V, T, pad_id=V)


def test_classes_and_config():
    bert, roberta = (_model(a, dropout=0.1, layer_norm_eps=1e-6) for a in ("bert", "roberta"))
    gpt = _model("gpt2", dropout=0.1, layer_norm_epsilon=1e-6)
    assert isinstance(bert, tf.BertForPreTraining) and isinstance(roberta, tf.RobertaForMaskedLM)
    assert isinstance(gpt, tf.GPT2LMHeadModel)
    assert text_base(bert) is bert.bert and text_base(roberta) is roberta.roberta and text_base(gpt) is gpt.transformer
    assert bert.config.hidden_dropout_prob == 0.1 and gpt.config.resid_pdrop == 0.1 and gpt.config.attn_pdrop == 0.1
    assert bert.config.layer_norm_eps == 1e-6 and roberta.config.layer_norm_eps == 1e-6
    assert gpt.config.layer_norm_epsilon == 1e-6
    assert gpt.config.n_positions == T and bert.config.max_position_embeddings == T
    assert roberta.config.max_position_embeddings == T + PAD + 1  # RoBERTa numbers positions from pad_id + 1
    assert gpt.config.bos_token_id == 1 and gpt.config.eos_token_id == 2 and gpt.config.pad_token_id == PAD
    assert all(m.config._attn_implementation == "sdpa" for m in (bert, roberta, gpt))


def test_output_shapes_and_losses():
    b = _batch([T, 9, 3])
    out = _model("bert")(**b, token_type_ids=torch.zeros_like(b["input_ids"]))
    assert out.prediction_logits.shape == (3, T, V) and out.seq_relationship_logits.shape == (3, 2)
    out = _model("roberta")(**b)
    assert out.logits.shape == (3, T, V)
    gpt = _model("gpt2")
    labels = b["input_ids"].masked_fill(b["attention_mask"] == 0, -100)
    out = gpt(**b, labels=labels)
    assert out.logits.shape == (3, T, V)
    assert abs(out.loss.item() - torch.log(torch.tensor(float(V))).item()) < 0.5  # ~uniform at init
    # a full-length input works (position tables are large enough, RoBERTa included)
    for arch in ARCHS:
        enc = TextEncoder(text_base(_model(arch)), "mean", 128)
        assert enc(_batch([T, T])).shape == (2, 128)


def _param_count(arch, s, vocab, max_len, pad):
    """Parameter count from the architecture's definition (weights of LM decoders are tied to embeddings)."""
    d, ff, n = s["hidden"], s["intermediate"], s["n_layers"]
    ln = 2 * d
    attn = 4 * (d * d + d)
    mlp = d * ff + ff + ff * d + d
    layer = attn + mlp + 2 * ln
    if arch == "gpt2":
        return vocab * d + max_len * d + n * layer + ln
    head = d * d + d + ln + vocab  # transform dense + LayerNorm + decoder bias
    if arch == "bert":
        emb = vocab * d + max_len * d + 2 * d + ln
        return emb + n * layer + (d * d + d) + head + (2 * d + 2)  # + pooler + next-sentence head
    emb = vocab * d + (max_len + pad + 1) * d + d + ln
    return emb + n * layer + head


@pytest.mark.parametrize("size", list(TEXT_SIZES))
def test_parameter_counts_of_named_sizes(size):
    with torch.device("meta"):
        for arch in ARCHS:
            m = build_text_model(arch, size, vocab_size=1000, max_len=128, pad_id=1)
            got = sum(p.numel() for p in m.parameters())
            assert got == _param_count(arch, TEXT_SIZES[size], 1000, 128, 1), (arch, size)
    assert TEXT_SIZES["tiny"]["hidden"] < TEXT_SIZES["mini"]["hidden"] < TEXT_SIZES["small"]["hidden"]


def test_pool_against_hand_computation():
    h = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    assert torch.equal(pool(h, mask, "cls"), h[:, 0])
    assert torch.equal(pool(h, mask, "last"), torch.stack([h[0, 2], h[1, 1]]))
    assert torch.allclose(pool(h, mask, "mean"), torch.stack([h[0, :3].mean(0), h[1, :2].mean(0)]))
    assert torch.equal(pool(h, torch.ones(2, 4), "last"), h[:, 3])


@pytest.mark.parametrize("arch", ARCHS)
def test_encoder_matches_trunk_and_ignores_padding(arch):
    model = _model(arch)
    enc = {p: TextEncoder(text_base(model), p, 128).eval() for p in ("mean", "cls", "last")}
    short = _batch([7], width=7, seed=1)
    padded = {k: torch.nn.functional.pad(v, (0, 9), value=PAD if k == "input_ids" else 0) for k, v in short.items()}
    with torch.no_grad():
        h = text_base(model)(**short).last_hidden_state[0]  # (7, 128), no padding at all
        want = {"mean": h.mean(0), "cls": h[0], "last": h[-1]}
        for p, e in enc.items():
            assert e.dim == 128
            for b in (short, padded):
                got = e(b)
                assert got.shape == (1, 128)
                assert torch.allclose(got[0], want[p], atol=1e-5), (arch, p)
        # a batch mixing lengths gives each row the vector it gets alone
        both = _batch([7, 12], seed=1)
        both["input_ids"][0] = padded["input_ids"][0]
        assert torch.allclose(enc["mean"](both)[0], want["mean"], atol=1e-5)
        assert torch.allclose(enc["last"](both)[0], want["last"], atol=1e-5)


def test_encoder_rejects_bad_arguments():
    trunk = text_base(_model("bert"))
    with pytest.raises(SslabError, match="pooling"):
        TextEncoder(trunk, "max", 128)
    with pytest.raises(SslabError, match="hidden size"):
        TextEncoder(trunk, "mean", 64)


@pytest.mark.parametrize("arch,auto_head", [("bert", tf.AutoModelForPreTraining),
                                            ("roberta", tf.AutoModelForMaskedLM),
                                            ("gpt2", tf.AutoModelForCausalLM)])
def test_save_pretrained_round_trip(tmp_path, arch, auto_head):
    model = _model(arch)
    b = _batch([T, 5])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    base = tf.AutoModel.from_pretrained(tmp_path).eval()
    full = auto_head.from_pretrained(tmp_path).eval()
    assert type(full) is type(model) and type(base) is type(text_base(model))
    with torch.no_grad():
        assert torch.allclose(base(**b).last_hidden_state, text_base(model)(**b).last_hidden_state, atol=1e-6)
        key = "prediction_logits" if arch == "bert" else "logits"
        assert torch.allclose(full(**b)[key], model(**b)[key], atol=1e-6)
        enc, enc2 = TextEncoder(text_base(model), "mean", 128), TextEncoder(base, "mean", 128)
        assert torch.allclose(enc(b), enc2(b), atol=1e-6)
