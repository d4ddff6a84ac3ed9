"""word2vec and GloVe: the word tokenizer, subsampling / dynamic-window / co-occurrence views (properties and exact
small cases), known loss values, intrinsic evaluation on gensim's sets, the word2vec text format read back by gensim,
end-to-end runs on WikiText-2 and the bad-input cases of the word-vector commands."""
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sslab.data.tokenizers import train_tokenizer
from sslab.errors import SslabError
from sslab.evaluate.wordvec import WordTable, parse_analogy, word_analogies, word_similarity
from sslab.nets.text import BagOfVectors, WordVectors, read_word2vec_format, write_word2vec_format
from sslab.views.text import cbow_windows, cooccurrences, keep_probabilities, skipgram_pairs, subsample_words

from cli_contract import assert_error, run_cli

ROOT = Path(os.environ.get("SSLAB_DATA_ROOT", "/nonexistent"))
WIKI = ROOT / "wikitext-2" / "valid.txt"
SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]"}


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------------------------------------ tokenizer
def test_word_tokenizer_splits_punctuation_keeps_placeholders_and_applies_min_count(tmp_path):
    from transformers import PreTrainedTokenizerFast

    tok = train_tokenizer(["The cat sat, on the mat . <unk> Cat's"] * 3 + ["rare words here"], "word", 100, SPECIALS,
                          lowercase=True, min_frequency=2)
    vocab = set(tok.get_vocab())
    assert {"the", "cat", ",", "<unk>", "'", "s"} <= vocab and "rare" not in vocab and "The" not in vocab
    assert tok.convert_ids_to_tokens(tok("The CAT, zebra")["input_ids"]) == ["the", "cat", ",", "[UNK]"]
    tok.save_pretrained(str(tmp_path / "tok"))
    again = PreTrainedTokenizerFast.from_pretrained(str(tmp_path / "tok"))
    assert again("cat on mat")["input_ids"] == tok("cat on mat")["input_ids"]
    with pytest.raises(SslabError, match="min_count"):
        train_tokenizer(["every word once"], "word", 100, SPECIALS, min_frequency=2)


# ------------------------------------------------------------------------------------------------ views
def test_keep_probabilities_follow_word2vec_formula():
    p = keep_probabilities(torch.tensor([0, 1000, 10]), 1e-3)
    t = 1e-3 * 1010
    assert p[0] == 0
    assert p[1].item() == pytest.approx((math.sqrt(1000 / t) + 1) * t / 1000, rel=1e-5)
    assert p[2].item() == pytest.approx(min(1.0, (math.sqrt(10 / t) + 1) * t / 10), rel=1e-5)
    assert keep_probabilities(torch.tensor([0, 5, 7]), 0).tolist() == [0, 1, 1]


def test_subsampling_removes_dropped_tokens_and_keeps_order():
    ids = torch.tensor([[5, 0, 6, 7, 0, 8], [0, 0, 9, 0, 0, 0]])
    doc = torch.zeros_like(ids)
    keep = torch.ones(10)
    keep[0] = 0  # a special token: never kept
    out, d, filled = subsample_words(ids, doc, keep, torch.Generator().manual_seed(0))
    assert out[0, :4].tolist() == [5, 6, 7, 8] and filled[0].tolist() == [1, 1, 1, 1, 0, 0]
    assert out[1, :1].tolist() == [9] and filled[1].sum() == 1
    half = torch.full((10,), 0.5)
    a = subsample_words(torch.arange(1, 10).repeat(4, 1), torch.zeros(4, 9, dtype=torch.long), half,
                        torch.Generator().manual_seed(3))
    b = subsample_words(torch.arange(1, 10).repeat(4, 1), torch.zeros(4, 9, dtype=torch.long), half,
                        torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # seeded: the same views


def test_skipgram_pairs_window_one_is_every_neighbour_within_a_document():
    ids = torch.tensor([[1, 2, 3, 4]])
    doc = torch.tensor([[0, 0, 1, 1]])  # 2|3 is a document boundary
    c, o = skipgram_pairs(ids, doc, torch.ones_like(ids, dtype=torch.bool), 1)
    assert sorted(zip(c.tolist(), o.tolist())) == [(1, 2), (2, 1), (3, 4), (4, 3)]


def test_dynamic_window_includes_distance_d_with_probability_w_minus_d_plus_1_over_w():
    w, L = 4, 2000
    ids = torch.arange(L).unsqueeze(0)
    c, o = skipgram_pairs(ids, torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool), w,
                          torch.Generator().manual_seed(0))
    dist = (c - o).abs()
    assert dist.min() >= 1 and dist.max() <= w
    for d in range(1, w + 1):
        rate = (dist == d).sum().item() / (2 * (L - d))
        assert rate == pytest.approx((w - d + 1) / w, abs=0.03)


def test_cbow_windows_average_the_words_around_each_centre():
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    centres, ctx, mask = cbow_windows(ids, torch.zeros_like(ids), torch.ones_like(ids, dtype=torch.bool), 2,
                                      torch.Generator().manual_seed(0))
    assert centres.tolist() == [1, 2, 3, 4, 5]
    for centre, row, m in zip(centres.tolist(), ctx, mask):
        words = set(row[m].tolist())
        assert words and centre not in words and all(abs(x - centre) <= 2 for x in words)


def test_cooccurrences_weigh_by_inverse_distance_symmetrically_within_documents():
    # a b [UNK] c | d : [UNK] (id 0) is removed first, so b and c are neighbours
    rows, cols, vals = cooccurrences(np.array([1, 2, 0, 3, 4]), np.array([0, 0, 0, 0, 1]), 5, 2, skip_ids=[0])
    X = {(r, c): v for r, c, v in zip(rows.tolist(), cols.tolist(), vals.tolist())}
    assert X == {(1, 2): 1.0, (2, 1): 1.0, (2, 3): 1.0, (3, 2): 1.0, (1, 3): 0.5, (3, 1): 0.5}


# ------------------------------------------------------------------------------------------------ losses
def _run_info(tmp_path, method, args=None):
    """A run.json-like description for a 20-word vocabulary whose counts file exists."""
    tok = train_tokenizer([" ".join(f"w{i}" for i in range(18))], "word", 100, SPECIALS)
    tok.save_pretrained(str(tmp_path / "tokenizer"))
    (tmp_path / "data").mkdir(exist_ok=True)
    np.save(tmp_path / "data" / "counts.npy", np.array([0, 0] + [10] * (len(tok) - 2)))
    from sslab.methods.text import tokenizer_meta

    return {**tokenizer_meta(tok, 64, "word"), "run_dir": str(tmp_path), "method": method, "backbone": "d8",
            "method_args": args or {}}


def test_word2vec_loss_at_initialisation_is_log2_per_target(tmp_path):
    from sslab.engine import method_from_info

    model = method_from_info(_run_info(tmp_path, "word2vec", {"negatives": 5}))
    ids = torch.randint(2, 20, (2, 64))
    inputs = model.views({"ids": ids, "doc": torch.zeros_like(ids)}, torch.Generator().manual_seed(0))
    # contexts start at zero (word2vec.c), so every score is 0 and each of the 1 + 5 targets costs log 2
    assert model(**inputs).item() == pytest.approx(6 * math.log(2), rel=1e-6)
    assert set(inputs["negatives"].flatten().tolist()) <= set(range(2, 20))  # specials are never negatives


def test_glove_loss_is_weighted_least_squares_of_log_counts(tmp_path):
    from sslab.engine import method_from_info

    model = method_from_info(_run_info(tmp_path, "glove"))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    count = torch.tensor([1.0, 50.0, 400.0])
    weight = torch.tensor([(1 / 100) ** 0.75, 0.5 ** 0.75, 1.0])
    expected = (weight * count.log() ** 2).mean().item()
    assert model(torch.tensor([2, 3, 4]), torch.tensor([5, 6, 7]), count).item() == pytest.approx(expected, rel=1e-6)


def test_bag_of_vectors_averages_known_words_only():
    net = WordVectors(5, 2)
    with torch.no_grad():
        net.words.weight.copy_(torch.tensor([[9.0, 9], [9, 9], [1, 0], [0, 1], [1, 1]]))
    enc = BagOfVectors(net, [0, 1])
    out = enc({"input_ids": torch.tensor([[2, 3, 1, 0], [1, 0, 0, 0]]),
               "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])})
    assert out.tolist() == [[0.5, 0.5], [0.0, 0.0]]


# ------------------------------------------------------------------------------------------------ evaluation
def test_word_similarity_and_analogies_on_handmade_vectors(tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("# header\na\tb\t9\na\tc\t5\na\td\t1\na\tzz\t3\n")
    words = ["a", "b", "c", "d"]
    vecs = np.array([[1, 0], [0.99, 0.1], [0.7, 0.7], [-1, 0.2]], dtype=np.float32)
    r = word_similarity(WordTable(words, vecs), pairs)
    assert r["spearman"] == pytest.approx(1.0) and r["pairs"] == 3 and r["oov_pairs"] == 1
    q = tmp_path / "q.txt"
    q.write_text(": toy\nman king woman queen\nman king woman zz\n")
    table = WordTable(["man", "king", "woman", "queen", "apple"],
                      np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [0.5, -1, 0.2]], dtype=np.float32))
    r = word_analogies(table, q)
    assert r["accuracy"] == 1.0 and r["questions"] == 1 and r["oov_questions"] == 1
    assert table.most_similar(*parse_analogy("king - man + woman"), topn=1)[0][0] == "queen"
    assert parse_analogy("king-man+woman") == (["king", "woman"], ["man"])


def test_word2vec_format_round_trips_and_gensim_reads_it(tmp_path):
    gensim = pytest.importorskip("gensim")
    words = ["the", "cat", "<unk>", "naïve"]
    vecs = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32)
    path = write_word2vec_format(tmp_path / "v.txt", words, vecs)
    w2, v2 = read_word2vec_format(path)
    assert w2 == words and np.allclose(v2, vecs, atol=1e-5)
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(path))
    assert list(kv.index_to_key) == words and np.allclose(kv["cat"], vecs[1], atol=1e-5)


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def w2v_run(tmp_path_factory):
    if not WIKI.is_file():
        pytest.skip("wikitext-2 not in the data root")
    out = tmp_path_factory.mktemp("w2v") / "run"
    code = __import__("sslab.cli", fromlist=["main"]).main(
        ["pretrain", "--data", "wikitext-2", "--method", "word2vec", "--budget", "12s", "--out", str(out)])
    assert code == 0
    return out


def test_word2vec_learns_on_wikitext_and_gensim_loads_its_vectors(w2v_run, capsys):
    import json

    rows = [json.loads(x) for x in (w2v_run / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0]["val_loss"], rows[-1]["val_loss"]
    assert first == pytest.approx(6 * math.log(2), rel=1e-3)  # zero context vectors: log 2 per target
    assert last < first - 0.5  # held-out pairs are predicted: a random table would stay at 6 log 2
    gensim = pytest.importorskip("gensim")
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(w2v_run / "vectors.txt"))
    assert "the" in kv and "[UNK]" not in kv and kv.vector_size == 100
    code = run_cli(capsys, "wordvec", w2v_run, "--similar", "king", "--analogy", "king - man + woman", "--top", "3")
    assert code[0] == 0 and code[1].startswith("king: ") and "king - man + woman: " in code[1]


def test_averaged_word_vectors_go_through_the_harness(w2v_run):
    from sslab.config import EvalConfig
    from sslab.api import evaluate_run

    cfg = EvalConfig(fractions=[1.0], seeds=1, protocols=["linear"], baselines=[], linear_cv=True)
    res = evaluate_run(w2v_run, cfg, data="sst2", log=lambda *a: None)
    acc = [r["test_acc"] for r in res["runs"] if r["init"] == "ssl"][0]
    assert acc > 0.55  # averaged vectors trained on wikitext separate SST-2's sentiment better than chance
    assert "word-vectors" in res["run_evaluations"]


# ------------------------------------------------------------------------------------------------ bad input
def test_wordvec_on_a_run_without_vectors(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    assert_error(run_cli(capsys, "wordvec", tmp_path / "run", "--similar", "a"), "no word vectors", root=tmp_path)


@pytest.mark.parametrize("args,words", [
    (["--similar", "zzzzunknown"], ["not in the vocabulary"]),
    (["--analogy", "king - - man"], ["cannot read the analogy"]),
    (["--analogy", "king man"], ["+ or -"]),
    ([], ["nothing to do"]),
])
def test_wordvec_bad_queries(capsys, tmp_path, args, words):
    path = write_word2vec_format(tmp_path / "v.txt", ["king", "man", "woman"], np.eye(3, dtype=np.float32))
    assert_error(run_cli(capsys, "wordvec", path, *args), *words, root=tmp_path)


@pytest.mark.parametrize("text,words", [
    ("3 2\nking 1 0\nman 0\n", ["expected a word and 2 numbers"]),
    ("king 1 0\n", ["not in the word2vec text format"]),
    ("2 2\nking 1 x\nman 0 1\n", ["not a number"]),
    ("3 2\nking 1 0\n", ["announces 3 words but holds 1"]),
])
def test_malformed_vectors_file(capsys, tmp_path, text, words):
    (tmp_path / "v.txt").write_text(text)
    assert_error(run_cli(capsys, "wordvec", tmp_path / "v.txt", "--similar", "king"), *words, root=tmp_path)


def test_corpus_with_no_word_in_the_evaluation_sets(capsys, tmp_path):
    path = write_word2vec_format(tmp_path / "v.txt", ["qqq", "zzz", "xxx"], np.eye(3, dtype=np.float32))
    code, out, err = run_cli(capsys, "wordvec", path, "--evaluate")
    if "not evaluated" in out:
        pytest.skip("the evaluation sets are not available (no gensim, no data root copy, no network)")
    assert code == 0 and "wordsim353 Spearman n/a on 0 pairs (353 skipped" in out


@pytest.mark.parametrize("args,words", [
    (["--backbone", "big"], ["word vector size", "d100"]),
    (["method_args.mode=glove"], ["word2vec mode", "skipgram or cbow"]),
    (["method_args.window=0"], ["window", "positive integer"]),
    (["method_args.min_count=100000"], ["min_count"]),
])
def test_bad_word2vec_settings(capsys, tmp_path, args, words):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\n" * 600)
    out = tmp_path / "run"
    assert_error(run_cli(capsys, "pretrain", "--data", corpus, "--method", "word2vec", "--budget", "2s", "--out", out,
                         *args), *words, root=tmp_path, out=out)
