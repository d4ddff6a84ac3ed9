"""Text methods end to end on tiny real data (TREC questions, Tiny Shakespeare): pretraining writes a run that HF
loads, learns what a random network would not, resumes, generates, and goes through the study harness."""
import json
import math
import os
from pathlib import Path

import pytest
import torch

import sslab
from sslab.cli import main
from sslab.config import EvalConfig, PretrainConfig, StudyConfig
from sslab.data import load_data
from sslab.engine import load_encoder, load_method
from sslab.methods import prepare_pretraining

ROOT = Path(os.environ.get("SSLAB_DATA_ROOT", "../shared/data"))
needs_trec = pytest.mark.skipif(not (ROOT / "sentences" / "TREC.train").is_file(), reason="TREC not in the data root")
needs_shakespeare = pytest.mark.skipif(not (ROOT / "tinyshakespeare" / "input.txt").is_file(),
                                       reason="Tiny Shakespeare not in the data root")
TINY = dict(backbone="tiny", batch_size=16, context=32, vocab_size=500, log_every=5, lr=2e-3, lr_scaling="none",
            channels_last=False)


def _pretrain(method: str, data: str, out: Path, resume: bool = False, **kw):
    cfg = PretrainConfig(method=method, **{**TINY, "epochs": None, "budget": None, **kw})
    splits = load_data(data, ROOT, kind="text")
    prep = prepare_pretraining(splits, cfg, out)
    res = sslab.pretrain(prep.train, cfg, out, resume=resume, show_progress=False, data_spec=data, val_data=prep.val)
    return res, splits


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if not (ROOT / "sentences" / "TREC.train").is_file():
        pytest.skip("TREC not in the data root")
    out = {}
    for m in ("bert", "roberta", "gpt"):
        d = tmp_path_factory.mktemp(m)
        out[m] = (d, _pretrain(m, "trec", d, epochs=3, max_items=640)[0])  # 120 steps of 16 x 32 tokens
    return out


@needs_trec
@pytest.mark.parametrize("method", ["bert", "roberta", "gpt"])
def test_run_loads_in_transformers(runs, method):
    from transformers import AutoModel, AutoTokenizer

    run, res = runs[method]
    assert res["unit"] == "tokens" and res["tokens_per_s"] > 0 and res["steps"] > 0
    model = AutoModel.from_pretrained(run / "hf")
    tok = AutoTokenizer.from_pretrained(run / "hf")
    batch = tok(["How far is it from Denver to Aspen ?"], return_tensors="pt")
    assert model(input_ids=batch["input_ids"]).last_hidden_state.shape[-1] == 128
    # the trunk HF loads is the one sslab's encoder uses for transfer
    enc, info = load_encoder(run)
    ours = enc.trunk(input_ids=batch["input_ids"]).last_hidden_state
    torch.testing.assert_close(model.eval()(input_ids=batch["input_ids"]).last_hidden_state, ours)
    assert (run / "tokenizer" / "tokenizer.json").is_file() and not list(run.rglob("*.tmp"))


@needs_trec
@pytest.mark.parametrize("method,measure", [("bert", "val_mlm_acc"), ("roberta", "val_mlm_acc"),
                                            ("gpt", "val_loss")])
def test_pretext_learns(runs, method, measure):
    """120 steps on TREC's questions move the held-out pretext measure far from a random network's."""
    rows = [json.loads(line) for line in (runs[method][0] / "metrics.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    if measure == "val_loss":  # a random network predicts ~uniformly: ln(vocab)
        assert first[measure] > 5.5 and last[measure] < first[measure] - 1.0, (first[measure], last[measure])
    else:  # masked-token accuracy: from ~0 to frequent-word level
        assert first[measure] < 0.02 and last[measure] > 0.04, (first[measure], last[measure])
    if method == "bert":
        assert "val_nsp_acc" in last and "nsp_acc" in last


@pytest.fixture
def crashing_gpt():
    """GPT that raises once its forward has been called `raise_at` times (a crash mid-run)."""
    from sslab.methods import METHODS, register
    from sslab.methods.gpt import GPT

    @register("test-gpt-crash")
    class Crashing(GPT):
        def __init__(self, net, raise_at=None, **kw):
            super().__init__(net, **kw)
            self.calls, self.raise_at = 0, raise_at

        def forward(self, input_ids, targets):
            self.calls += self.training  # training steps only (the probe runs in eval mode)
            if self.training and self.calls == self.raise_at:
                raise RuntimeError("simulated crash")
            return super().forward(input_ids, targets)

    yield "test-gpt-crash"
    METHODS.pop("test-gpt-crash", None)


@needs_trec
def test_resume_continues_a_text_run(tmp_path, crashing_gpt):
    """A text run killed mid-way and resumed ends bit-identical to an uninterrupted one (token order, schedule,
    optimiser state; the tokenizer and token stream are reused from the run folder)."""
    kw = dict(epochs=1, max_items=320, checkpoint_every=1e-6)  # 20 steps, a checkpoint after each
    full, _ = _pretrain(crashing_gpt, "trec", tmp_path / "full", **kw)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _pretrain(crashing_gpt, "trec", tmp_path / "cut", method_args={"raise_at": 13}, **kw)
    res, _ = _pretrain(crashing_gpt, "trec", tmp_path / "cut", resume=True, **kw)
    assert res["steps"] == full["steps"] == 20
    a, _ = load_method(tmp_path / "full")
    b, _ = load_method(tmp_path / "cut")
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(v, w, rtol=0, atol=0, msg=k)


@needs_shakespeare
def test_char_gpt_generates(tmp_path, capsys):
    run = tmp_path / "gpt"
    code = main(["pretrain", "--data", "tinyshakespeare", "--method", "gpt", "--backbone", "tiny", "--budget", "6s",
                 "--out", str(run), "batch_size=16", "context=64", "method_args={tokenizer: char}",
                 "channels_last=false"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["generate", str(run), "--prompt", "ROMEO:", "--tokens", "40", "--temperature", "0.8",
                 "--top-k", "10"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text) >= len("ROMEO:") + 40  # 40 characters sampled
    info = json.loads((run / "run.json").read_text())
    assert info["tokenizer_kind"] == "char" and info["vocab_size"] <= 70


@needs_trec
def test_text_study_end_to_end(tmp_path):
    """A labelled CSV the loaders have never seen, through the whole study: the SSL rows, the scratch baselines
    and TF-IDF logistic regression, a report with the pretext measures."""
    lines = (ROOT / "sentences" / "TREC.train").read_bytes().decode("latin-1").splitlines()[:1500]
    rows = ["label,text"] + [f'{ln.split(":")[0]},"{ln.split(" ", 1)[1].replace(chr(34), "")}"' for ln in lines]
    data = tmp_path / "questions.csv"
    data.write_text("\n".join(rows) + "\n")
    cfg = StudyConfig(data=str(data), pretrain=PretrainConfig(method="bert", **{**TINY, "budget": 8}),
                      eval=EvalConfig(fractions=[0.1, 1.0], seeds=2, finetune_images=600, finetune_min_steps=10,
                                      finetune_epochs=3, linear_steps=200, finetune_seeds_large=1,
                                      protocols=["knn", "linear", "finetune"]))  # as the text recipes: no student
    res = sslab.study(cfg, tmp_path / "run", log=lambda *a: None, show_progress=False)
    keys = {(r["init"], r["protocol"]) for r in res["runs"]}
    assert {("ssl", "knn"), ("ssl", "linear"), ("ssl", "finetune"), ("scratch", "finetune"),
            ("scratch+aug", "finetune"), ("tfidf", "logreg")} <= keys
    tfidf = [r["test_acc"] for r in res["runs"] if r["init"] == "tfidf" and r["fraction"] == 1.0]
    assert min(tfidf) > 0.5  # 6 classes: TF-IDF on questions is far above chance
    # the pretext task was learnt, which an untrained network does not show: the held-out masked-token loss starts
    # near ln(vocab) and falls, and the masked-token accuracy rises (measured in 8 s of pretraining: loss 6.97 ->
    # 5.75-6.08, accuracy 0.0 -> 0.11)
    hist = res["pretrain"]["history"]
    first, last = hist[0], hist[-1]
    assert first["val_loss"] > 0.8 * math.log(TINY["vocab_size"]), first
    assert last["val_loss"] < first["val_loss"] - 0.5, (first, last)
    acc = next(k for k in last if k.startswith("val_") and "acc" in k)
    assert last[acc] > first[acc] + 0.05, (acc, first, last)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "tfidf" in html and "pretext_measures.png" in html and "texts" in html
    assert res["data"]["kind"] == "text" and res["pretrain"]["unit"] == "tokens"


@needs_trec
def test_study_on_a_text_file_needs_no_method(tmp_path, capsys, monkeypatch):
    """`sslab study --data questions.txt` (a labelled file never seen) picks the text default, GPT."""
    monkeypatch.chdir(tmp_path)
    lines = (ROOT / "sentences" / "TREC.train").read_bytes().decode("latin-1").splitlines()[:600]
    data = tmp_path / "questions.txt"
    data.write_text("\n".join(f"{ln.split(':')[0]} {ln.split(' ', 1)[1]}" for ln in lines) + "\n")
    code = main(["study", "--data", str(data), "--budget", "3s", "--out", str(tmp_path / "run"),
                 "pretrain.backbone=tiny", "eval.fractions=[1.0]", "eval.seeds=1", "eval.finetune_images=300",
                 "eval.finetune_min_steps=5", "eval.protocols=[knn]"])
    assert code == 0, capsys.readouterr().err
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["method"] == "gpt" and info["kind"] == "text"
    assert (tmp_path / "run" / "report.html").is_file()


def test_linear_cv_probe_regularises_few_labels():
    """20 labelled points in 40 dimensions, one of which carries the class: the cross-validated logistic probe
    (L2 strength by 3-fold CV) generalises better than the AdamW probe, which fits the 20 points exactly
    (measured over seeds 0-2: 0.69/0.65/0.68 against 0.57/0.59/0.56)."""
    from sslab.evaluate.protocols import linear_probe

    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(2000) % 2
        x = torch.randn(2000, 40, generator=g)
        x[:, 0] += 1.5 * (2 * y - 1)
        idx = torch.arange(20)
        cv = linear_probe(x[idx], y[idx], x[1000:], y[1000:], EvalConfig(linear_cv=True), 0, 2)
        sgd = linear_probe(x[idx], y[idx], x[1000:], y[1000:], EvalConfig(), 0, 2)
        assert cv["curve"] is None and sgd["train_acc"] == 1.0
        assert cv["test_acc"] > 0.63 and cv["test_acc"] > sgd["test_acc"] + 0.05, (cv, sgd)


def test_dropout_method_arg(tmp_path):
    from sslab.methods import build_for_data

    meta = {"kind": "text", "vocab_size": 64, "context": 16, "pad_id": 0, "bos_id": 1, "eos_id": 1,
            "special_ids": [0, 1]}
    model = build_for_data("gpt", "tiny", {"dropout": 0.2}, meta)
    rates = {m.p for m in model.net.modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.2} and model.net.config.resid_pdrop == 0.2
    with pytest.raises(sslab.SslabError, match="dropout"):
        build_for_data("gpt", "tiny", {"dropout": 1.5}, meta)


@needs_trec
@needs_shakespeare
def test_study_pretrains_on_other_text(tmp_path, capsys, monkeypatch):
    """`sslab study --data questions.txt --pretrain-data tinyshakespeare`: the tokenizer and the encoder come from
    the other corpus (labels unused), the task is evaluated on them, and the report names both."""
    monkeypatch.chdir(tmp_path)
    lines = (ROOT / "sentences" / "TREC.train").read_bytes().decode("latin-1").splitlines()[:600]
    data = tmp_path / "questions.txt"
    data.write_text("\n".join(f"{ln.split(':')[0]} {ln.split(' ', 1)[1]}" for ln in lines) + "\n")
    code = main(["study", "--data", str(data), "--pretrain-data", "tinyshakespeare", "--method", "gpt", "--budget",
                 "3s", "--out", str(tmp_path / "run"), "pretrain.backbone=tiny", "eval.fractions=[1.0]",
                 "eval.seeds=1", "eval.protocols=[knn]", "eval.baselines=[]"])
    assert code == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"] == "tinyshakespeare"
    assert res["data"]["name"] == "questions" and res["pretrain_data"]["classes"] == []
    assert res["runs"] and all(r["test_acc"] > 0 for r in res["runs"])
    assert "transferred to questions" in (tmp_path / "run" / "report.html").read_text()
