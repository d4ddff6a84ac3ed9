"""T5: the SentencePiece-style Unigram tokenizer with sentinels, span-corruption pretraining of an HF
T5ForConditionalGeneration on TREC through the engine (held-out loss falls, the run loads with
AutoModelForSeq2SeqLM), transfer from the encoder, and bad T5 settings."""
import json
import os
from pathlib import Path

import pytest
import torch

from sslab.data.text import train_tokenizer

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
