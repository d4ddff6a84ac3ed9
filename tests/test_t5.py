"""T5: the SentencePiece-style Unigram tokenizer with sentinels, span-corruption pretraining of an HF
T5ForConditionalGeneration on TREC through the engine (held-out loss falls, the run loads with
AutoModelForSeq2SeqLM), transfer from the encoder, and bad T5 settings."""
import json
import os
from pathlib import Path

import pytest
import torch

from sslab.data.tokenizers import train_tokenizer

from cli_contract import assert_error, run_cli

ROOT = Path(os.environ.get("SSLAB_DATA_ROOT", "/nonexistent"))
TREC = ROOT / "sentences" / "TREC.train"
needs_trec = pytest.mark.skipif(not TREC.is_file(), reason="TREC not in the data root")


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def test_unigram_tokenizer_keeps_sentinels_whole_and_round_trips(tmp_path):
    from transformers import PreTrainedTokenizerFast

    texts = ["How did serfdom develop in and then leave Russia ?", "What is the capital of France ?"] * 50
    sentinels = [f"<extra_id_{i}>" for i in range(5)]
    tok = train_tokenizer(texts, "unigram", 300, {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"},
                          extra_specials=sentinels)
    assert tok.convert_ids_to_tokens(list(range(8))) == ["<pad>", "</s>", "<unk>", *sentinels]
    ids = tok("What is <extra_id_0> of France ?", add_special_tokens=False)["input_ids"]
    assert ids.count(3) == 1  # the sentinel is one token, never split into pieces
    assert tok.decode(tok(texts[0])["input_ids"]) == texts[0]
    tok.save_pretrained(str(tmp_path / "tok"))
    again = PreTrainedTokenizerFast.from_pretrained(str(tmp_path / "tok"))
    assert set(range(3, 8)) <= set(again.all_special_ids)


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory):
    if not TREC.is_file():
        pytest.skip("TREC not in the data root")
    out = tmp_path_factory.mktemp("t5") / "run"
    from sslab.cli import main

    assert main(["pretrain", "--data", "trec", "--method", "t5", "--backbone", "tiny", "--budget", "15s",
                 "--out", str(out), "context=64", "vocab_size=2000", "log_every=20"]) == 0
    return out


def test_t5_learns_span_corruption_and_loads_in_transformers(t5_run):
    from transformers import AutoModelForSeq2SeqLM

    from sslab.engine import load_encoder

    rows = [json.loads(x) for x in (t5_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 1.0
    model = AutoModelForSeq2SeqLM.from_pretrained(str(t5_run / "hf"))
    assert type(model).__name__ == "T5ForConditionalGeneration"
    enc, info = load_encoder(t5_run)
    assert info["extra_special_ids"][:2] == [3, 4]
    batch = {"input_ids": torch.tensor([[5, 6, 7, 1]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        assert enc(batch).shape == (1, 128)


@needs_trec
@pytest.mark.parametrize("args,words", [
    (["method_args.noise_density=1.5"], ["noise_density"]),
    (["method_args.mean_span=0"], ["mean_span"]),
    (["context=4"], ["context 4 is too short"]),
])
def test_bad_t5_settings(capsys, tmp_path, args, words):
    out = tmp_path / "run"
    assert_error(run_cli(capsys, "pretrain", "--data", "trec", "--method", "t5", "--backbone", "tiny", "--budget", "2s",
                         "--out", out, "vocab_size=2000", *args), *words, root=tmp_path, out=out)


def _tiny_t5(vocab=40):
    from sslab.nets.text import build_text_model

    torch.manual_seed(0)
    return build_text_model("t5", "tiny", vocab, 16, pad_id=0, eos_id=1).eval()


def test_label_scorer_gives_each_label_words_log_likelihood():
    """The score of class c is log p(label words of c + </s> | text): -(HF loss x label length), one class at a time."""
    from sslab.nets.text import LabelScorer, Seq2SeqEncoder

    model = _tiny_t5()
    labels = [[5, 6, 1], [7, 1], [8, 9, 10, 1]]
    scorer = LabelScorer(Seq2SeqEncoder(model, "mean", 128), labels)
    batch = {"input_ids": torch.tensor([[11, 12, 13, 1], [14, 15, 1, 0]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])}
    with torch.no_grad():
        scores = scorer(batch)
        assert scores.shape == (2, 3)
        for i in range(2):
            for c, ids in enumerate(labels):
                one = {k: v[i : i + 1] for k, v in batch.items()}
                loss = model(**one, labels=torch.tensor([ids])).loss
                assert torch.allclose(scores[i, c], -loss * len(ids), atol=1e-4)
        # the text's own padding does not change its scores
        trimmed = {k: v[1:2, :3] for k, v in batch.items()}
        assert torch.allclose(scorer(trimmed)[0], scores[1], atol=1e-5)


def test_label_scorer_needs_an_encoder_decoder_and_label_words():
    from sslab.errors import SslabError
    from sslab.nets.text import LabelScorer, Seq2SeqEncoder, TextEncoder

    model = _tiny_t5()
    with pytest.raises(SslabError, match="encoder-decoder"):
        LabelScorer(TextEncoder(model.get_encoder(), "mean", 128), [[5, 1]])
    with pytest.raises(SslabError, match="non-empty"):
        LabelScorer(Seq2SeqEncoder(model, "mean", 128), [[5, 1], []])


def test_label_words():
    from sslab.data.text import label_words

    assert label_words(["ABBR", "NUM", "very_negative", "sci-fi", "positive"]) == [
        "abbreviation", "number", "very negative", "sci fi", "positive"]


def test_text_to_text_learns_labels_a_random_rule_cannot_give():
    """Fine-tuned to write 'yes' or 'no', a tiny T5 from scratch separates texts by whether they hold token 7
    (train and held-out accuracy near 1); the protocol runs only on encoder-decoders."""
    from sslab.config import EvalConfig
    from sslab.data.streams import Examples
    from sslab.evaluate import PROTOCOLS
    from sslab.evaluate.text import text_to_text
    from sslab.nets.text import Seq2SeqEncoder, TextEncoder

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(11, 40, (240, 8), generator=g)
    y = torch.randint(0, 2, (240,), generator=g)
    ids[y == 1, torch.randint(0, 7, (int((y == 1).sum()),), generator=g)] = 7
    ids[y == 0] = torch.where(ids[y == 0] == 7, 8, ids[y == 0])
    ids[:, -1] = 1
    data = [Examples(ids[a:b], torch.ones_like(ids[a:b]), y[a:b].numpy(), ["no", "yes"], [""] * (b - a))
            for a, b in ((0, 200), (200, 240))]
    for d in data:
        d.label_ids = [[5, 1], [6, 1]]
    enc = Seq2SeqEncoder(_tiny_t5(), "mean", 128)
    assert PROTOCOLS["text2text"].applies(enc) and not PROTOCOLS["text2text"].applies(TextEncoder(enc.trunk, "mean", 128))
    cfg = EvalConfig(finetune_lr=3e-3, finetune_epochs=10, finetune_min_steps=60, batch_size=32, curve_points=2)
    res = text_to_text(enc, data[0], range(200), data[1], cfg, 0, 2)
    assert res["train_acc"] > 0.95 and res["test_acc"] > 0.9


def test_label_scorer_trains_on_the_right_labels_words():
    """Its training loss is the HF loss of the decoder writing each text's own label (T5's fine-tuning)."""
    from sslab.nets.text import LabelScorer, Seq2SeqEncoder

    model = _tiny_t5()
    labels = [[5, 6, 1], [7, 1]]
    scorer = LabelScorer(Seq2SeqEncoder(model, "mean", 128), labels)
    batch = {"input_ids": torch.tensor([[11, 12, 1], [13, 14, 1]]), "attention_mask": torch.ones(2, 3, dtype=torch.long)}
    y = torch.tensor([1, 0])
    with torch.no_grad():
        got = scorer.loss(batch, y)
        per_token = [-(scorer(batch)[i, y[i]]) for i in range(2)]
    assert torch.allclose(got, (per_token[0] + per_token[1]) / 5, atol=1e-4)  # 2 + 3 label tokens
