"""Tests for sslab.report: summary numbers, HTML + PNG output, graceful degradation,
escaping, and a headless-Chromium check that the page renders with every image loaded."""

from __future__ import annotations

import html.parser
import io
import json
import math
import os
import random
from pathlib import Path

import pytest

from sslab.errors import SslabError
from sslab.report import print_summary, write_report
from sslab.studies import summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _curve(final_train: float, final_test: float, epochs: int, rng: random.Random) -> list[dict]:
    out = []
    for e in range(1, epochs + 1):
        t = 1 - math.exp(-3 * e / epochs)
        tr = 0.1 + (final_train - 0.1) * t / (1 - math.exp(-3))
        te = 0.1 + (final_test - 0.1) * t / (1 - math.exp(-3)) + rng.uniform(-0.005, 0.005)
        out.append({"epoch": e, "train_acc": round(tr, 4), "test_acc": round(te, 4),
                    "train_loss": round(2.3 * (1 - tr) + 0.01, 4), "test_loss": round(2.3 * (1 - te) + 0.2, 4)})
    return out


def make_results(seeds: int = 3) -> dict:
    """A realistic synthetic results.json for a Fashion-MNIST study."""
    rng = random.Random(0)
    dim = 128
    history = []
    for i in range(1, 71):
        step = 10 * i
        history.append({"step": step, "epoch": round(step / 234, 3), "loss": round(5.6 - 1.8 * (1 - math.exp(-step / 200)) +
                                                                                   rng.uniform(-0.05, 0.05), 4),
                        "lr": round(0.001 * min(1.0, step / 100) * 0.5 * (1 + math.cos(math.pi * step / 700)), 7),
                        "emb_std": round(0.05 + 0.035 * (1 - math.exp(-step / 150)), 4),
                        "eff_rank": round(40 + 31 * (1 - math.exp(-step / 150)), 2)})
    std_per_dim = [round(0.081 + rng.gauss(0, 0.01), 5) for _ in range(dim)]
    sv = [round(10 * math.exp(-k / 30), 5) for k in range(dim)]

    # (init, protocol) -> test acc per fraction (means), train acc
    table = {
        ("ssl", "knn"): {0.01: (0.70, 0.76), 0.1: (0.77, 0.82), 1.0: (0.82, 0.86)},
        ("ssl", "linear"): {0.01: (0.74, 0.90), 0.1: (0.80, 0.86), 1.0: (0.84, 0.87)},
        ("ssl", "finetune"): {0.01: (0.75, 1.00), 0.1: (0.85, 0.97), 1.0: (0.91, 0.95)},
        ("scratch", "finetune"): {0.01: (0.66, 1.00), 0.1: (0.81, 1.00), 1.0: (0.90, 0.99)},
        ("scratch+aug", "finetune"): {0.01: (0.69, 0.98), 0.1: (0.84, 0.95), 1.0: (0.92, 0.94)},
        ("pixels", "logreg"): {0.01: (0.72, 1.00), 0.1: (0.80, 0.90), 1.0: (0.84, 0.87)},
    }
    runs = []
    for (init, proto), by_frac in table.items():
        for frac, (test, train) in by_frac.items():
            for seed in range(seeds):
                te = round(test + rng.uniform(-0.01, 0.01), 4)
                tr = round(min(1.0, train + rng.uniform(-0.005, 0.005)), 4)
                curve = None
                if proto in ("linear", "finetune") and frac in (0.01, 0.1):
                    curve = _curve(tr, te, 15, rng)
                runs.append({"init": init, "protocol": proto, "fraction": frac, "seed": seed,
                             "n_labels": int(60000 * frac), "train_acc": tr, "test_acc": te, "curve": curve})
    return {
        "sslab_version": "0.1.0",
        "created": "2026-11-23T14:00:00",
        "command": "sslab study --data fashion-mnist --method simclr --seeds 3",
        "config": {"data": {"name": "fashion-mnist", "root": "~/.cache/sslab"},
                   "pretrain": {"method": "simclr", "epochs": 3, "batch_size": 256, "lr": 0.001,
                                "augment": {"crop": [0.2, 1.0], "flip": True, "jitter": 0.4}},
                   "eval": {"fractions": [0.01, 0.1, 1.0], "protocols": ["knn", "linear", "finetune"], "seeds": seeds}},
        "data": {"name": "fashion-mnist", "n_train": 60000, "n_test": 10000, "shape": [28, 28, 1],
                 "classes": list(FASHION_CLASSES)},
        "pretrain": {"method": "simclr", "backbone": "resnet-s", "epochs": 3.1, "steps": 700, "seconds": 360.0,
                     "images_per_s": 520.0, "history": history},
        "health": {"dim": dim, "std_per_dim": std_per_dim, "std_mean": 0.081, "std_ideal": round(1 / math.sqrt(dim), 5),
                   "effective_rank": 71.3, "singular_values": sv},
        "runs": runs,
        "baseline_notes": "scratch = same network, random init, trained on the labelled subset only; "
                          "pixels = logistic regression on raw pixels.",
        "findings": [
            "At 10% labels the scratch model reaches 100% train accuracy but 81.0% test: it overfits.",
            "SSL fine-tuning beats scratch by 9 points at 1% labels.",
        ],
        "timing": {"total_seconds": 800, "pretrain_seconds": 360},
    }


class _ImgParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs: list[dict] = []
        self.title = ""
        self._in_title = False
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def _parse(path: Path) -> _ImgParser:
    p = _ImgParser()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def _check_pngs(run_dir: Path, parser: _ImgParser) -> None:
    for img in parser.imgs:
        src = img["src"]
        assert src.startswith("plots/") and src.endswith(".png"), src
        assert img.get("alt"), f"missing alt text on {src}"
        f = run_dir / src
        assert f.is_file(), f
        data = f.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000, f
        # IHDR: width/height are non-zero
        w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert w > 100 and h > 100, (f, w, h)


# ------------------------------------------------------------------ summarize


def test_summarize_known_values():
    runs = [
        {"init": "ssl", "protocol": "linear", "fraction": 0.1, "seed": 0, "train_acc": 0.9, "test_acc": 0.80},
        {"init": "ssl", "protocol": "linear", "fraction": 0.1, "seed": 1, "train_acc": 1.0, "test_acc": 0.82},
        {"init": "ssl", "protocol": "linear", "fraction": 0.1, "seed": 2, "train_acc": 0.95, "test_acc": 0.84},
        {"init": "scratch", "protocol": "finetune", "fraction": 0.01, "seed": 0, "test_acc": 0.5},
        {"init": "ssl", "protocol": "linear", "fraction": 0.01, "seed": 0, "train_acc": 1.0, "test_acc": 0.7},
        {"init": "newthing", "protocol": "probe", "fraction": 1.0, "seed": 0, "train_acc": 1.0, "test_acc": 0.6},
        {"init": "ssl", "protocol": "linear", "fraction": 0.1, "seed": 3, "test_acc": None},  # ignored
        "not a run",  # ignored
    ]
    rows = summarize({"runs": runs})
    by = {(r["init"], r["protocol"], r["fraction"]): r for r in rows}
    assert set(by) == {("ssl", "linear", 0.1), ("ssl", "linear", 0.01), ("scratch", "finetune", 0.01),
                       ("newthing", "probe", 1.0)}
    r = by[("ssl", "linear", 0.1)]
    assert r["n"] == 3
    assert r["mean"] == pytest.approx(0.82)
    assert r["std"] == pytest.approx(0.02)  # sample std of 0.80, 0.82, 0.84
    assert r["train_mean"] == pytest.approx(0.95)
    s = by[("scratch", "finetune", 0.01)]
    assert s["n"] == 1 and s["std"] == 0.0 and s["train_mean"] is None and s["mean"] == pytest.approx(0.5)
    for row in rows:
        assert set(row) == {"init", "protocol", "fraction", "mean", "std", "n", "train_mean", "unconverged", "judged",
                            "metric", "labels"}
        assert row["labels"] is None  # no run here says how many labels it had
        assert row["unconverged"] == row["judged"] == 0  # no run here says whether it converged
    # ordering: ssl before scratch before unknown inits; fractions ascending within a key
    order = [(r["init"], r["fraction"]) for r in rows]
    assert order == [("ssl", 0.01), ("ssl", 0.1), ("scratch", 0.01), ("newthing", 1.0)]


def test_summarize_empty():
    assert summarize({}) == []
    assert summarize({"runs": []}) == []


def test_summarize_on_full_results():
    res = make_results(seeds=3)
    rows = summarize(res)
    assert len(rows) == 6 * 3
    assert all(r["n"] == 3 for r in rows)
    assert all(0 < r["std"] < 0.02 for r in rows)


# ------------------------------------------------------------------ write_report


def test_write_report_from_json(tmp_path):
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps(make_results()), encoding="utf-8")
    out = write_report(run_dir)
    assert out == run_dir / "report.html" and out.is_file()
    p = _parse(out)
    assert "sslab report" in p.title
    assert len(p.imgs) == 4  # loss, fraction, curves, health
    _check_pngs(run_dir, p)
    text = out.read_text(encoding="utf-8")
    assert 'id="summary-table"' in text
    # best per column in bold: ssl/finetune is best at 1% and 10%, scratch+aug at 100%
    table = text[text.index('id="summary-table"'):text.index("</table>", text.index('id="summary-table"'))]
    assert table.count("<b>") == 3 and table.count('class="num best"') == 3
    assert "<b>75." in table and "<b>85." in table and "<b>91." in table
    assert "At 10% labels the scratch model reaches 100% train accuracy" in text
    assert "sslab study --data fashion-mnist" in text
    assert "batch_size" in text  # config block
    assert "520 images/s" in text
    # self-contained: no external resources
    assert "http://" not in text and "https://" not in text and "<script" not in text.lower()
    # no temp files left behind
    assert not [f for f in run_dir.rglob("*.tmp")]


def test_write_report_with_results_arg_and_rewrite(tmp_path):
    res = make_results(seeds=1)
    out1 = write_report(tmp_path, res)
    out2 = write_report(str(tmp_path), res)  # overwrite in place, str path
    assert out1 == out2 and out2.is_file()
    text = out2.read_text(encoding="utf-8")
    assert "(one run)" in text and "± 0.0" not in text  # a single run is printed as such


def test_missing_results_json(tmp_path):
    with pytest.raises(SslabError) as ei:
        write_report(tmp_path)
    assert "\n" not in str(ei.value) and "results.json" in str(ei.value)
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("content", ["{not json", "[1, 2, 3]", '{"runs": 5}', b"\xff\xfe\x00garbage"])
def test_malformed_results_json(tmp_path, content):
    f = tmp_path / "results.json"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content, encoding="utf-8")
    with pytest.raises(SslabError) as ei:
        write_report(tmp_path)
    assert "\n" not in str(ei.value)


def test_partial_results_still_render(tmp_path):
    res = make_results(seeds=2)
    for k in ("pretrain", "health", "config", "findings", "timing", "baseline_notes", "created"):
        res.pop(k)
    res["runs"] = [r for r in res["runs"] if r["init"] != "ssl"]
    for r in res["runs"]:
        r.pop("curve", None) if r["init"] == "pixels" else None
    out = write_report(tmp_path, res)
    text = out.read_text(encoding="utf-8")
    p = _parse(out)
    srcs = {i["src"] for i in p.imgs}
    assert "plots/accuracy_vs_fraction.png" in srcs and "plots/train_vs_test.png" in srcs
    assert "plots/pretrain_loss.png" not in srcs and "plots/embedding_health.png" not in srcs
    assert "<h2>Pretraining</h2>" not in text and "Embedding health" not in text
    _check_pngs(tmp_path, p)


def test_minimal_results_render(tmp_path):
    out = write_report(tmp_path, {"runs": []})
    text = out.read_text(encoding="utf-8")
    assert "No evaluation runs" in text
    assert _parse(out).imgs == []
    # only a history, no runs: loss + health-over-time plots
    res = {"pretrain": {"history": [{"step": i, "loss": 5 - i / 10, "emb_std": 0.05, "eff_rank": 30 + i}
                                    for i in range(20)]},
           "runs": [{"init": "ssl", "protocol": "knn", "fraction": 1.0, "seed": 0, "test_acc": 0.8,
                     "curve": None, "train_acc": None}]}
    out = write_report(tmp_path / "b", res)
    p = _parse(out)
    assert {i["src"] for i in p.imgs} == {"plots/pretrain_loss.png", "plots/accuracy_vs_fraction.png",
                                          "plots/embedding_health.png"}
    _check_pngs(tmp_path / "b", p)


def test_html_escapes_malicious_text(tmp_path):
    res = make_results(seeds=1)
    evil = "<script>alert(1)</script>"
    res["data"]["classes"][0] = evil
    res["data"]["name"] = 'fm"><img src=x onerror=alert(1)>'
    res["findings"].append("<b>bold?</b> & more")
    res["command"] = "sslab study --note '<script>x</script>'"
    res["config"]["evil"] = evil
    for r in res["runs"]:
        if r["init"] == "pixels":
            r["init"] = "<script>pix</script>"
    out = write_report(tmp_path, res)
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;bold?&lt;/b&gt; &amp; more" in text
    assert "onerror=alert(1)>" not in text
    p = _parse(out)
    assert all(i["src"].startswith("plots/") for i in p.imgs)


# ------------------------------------------------------------------ terminal


def test_print_summary(tmp_path):
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=200, color_system=None, force_terminal=False)
    print_summary(make_results(seeds=3), console=console)
    out = buf.getvalue()
    for head in ("1%", "10%", "100%"):
        assert head in out
    assert "scratch+aug" in out and "finetune" in out and "pixels" in out
    assert "n=3" in out and "±" in out
    # names with rich markup characters are printed literally
    res = make_results(seeds=1)
    for r in res["runs"]:
        if r["init"] == "pixels":
            r["init"] = "[red]pix[/red]"
    buf3 = io.StringIO()
    print_summary(res, console=Console(file=buf3, width=200, color_system=None))
    assert "[red]pix[/red]" in buf3.getvalue()
    buf2 = io.StringIO()
    print_summary({"runs": []}, console=Console(file=buf2, width=100))
    assert "No evaluation runs" in buf2.getvalue()


# ------------------------------------------------------------------ browser


def test_report_renders_in_headless_chromium(tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip(f"headless browser not installed ({CHROMIUM} / {CHROMEDRIVER} missing)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(make_results()), encoding="utf-8")
    html_path = write_report(run_dir)
    n_img = len(_parse(html_path).imgs)
    assert n_img == 4

    profile = tmp_path / "chrome-profile"
    profile.mkdir()
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,1600"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.get(html_path.resolve().as_uri())
        assert "sslab report" in driver.title
        tables = driver.find_elements(By.ID, "summary-table")
        assert len(tables) == 1 and tables[0].is_displayed()
        rows = tables[0].find_elements(By.CSS_SELECTOR, "tbody tr")
        assert len(rows) == 6
        loaded = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert len(loaded) == n_img and all(loaded), loaded
        # full-page screenshot for a human to look at (kept in pytest's tmp dir)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(int(height) + 100, 12000))
        shot = tmp_path / "report_screenshot.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == PNG_MAGIC
    finally:
        driver.quit()


def test_a_spread_below_the_printed_precision_is_not_printed_as_zero():
    from sslab.studies.summary import spread_text

    assert spread_text({"mean": 0.8632, "std": 0.0004, "n": 5}) == "86.3 ± 0.04 (n=5)"
    assert spread_text({"mean": 0.8632, "std": 0.0004, "n": 5}, pct=lambda v: f"{v:.1%}") == "86.3% ± 0.04% (n=5)"
    assert spread_text({"mean": 0.8632, "std": 0.0, "n": 5}) == "86.3 (all 5 runs equal)"
    assert spread_text({"mean": 0.904, "std": 1.2e-16, "n": 5}, compact=True) == "90.4 (all 5 runs equal)"  # float noise
