"""The main job: pretrain -> every evaluation at every label fraction -> results.json + report.html."""
from __future__ import annotations

import datetime
import json
import math
import time
from pathlib import Path

from sslab import __version__
from sslab.atomic import atomic_write
from sslab.config import EvalConfig, StudyConfig
from sslab.data import load_data
from sslab.engine import load_encoder, method_from_info, pretrain, read_run_info
from sslab.errors import SslabError
from sslab.evaluate import check_labelled, evaluate_encoder, kind_adapter, run_evaluations
from sslab.methods import method_kind, prepare_pretraining
from sslab.progress import Progress
from sslab.report import print_summary, spread_text, summarize, write_report


def say(line: str) -> None:
    """The study's default log: a line on standard output, flushed (a log file sees it when it happens)."""
    print(line, flush=True)


def _unconverged(*groups) -> str:
    """'' when every run of the summarised `groups` converged or had a fixed budget; else which did not, and that no
    conclusion is drawn from them."""
    bad = [g for g in groups if g.get("unconverged")]
    if not bad:
        return ""
    return ("; ".join(f"{g['init']} {g['protocol']} stopped at its cap before validation accuracy stopped rising in "
                      f"{g['unconverged']} of {g['n']} runs" for g in bad) + ": no conclusion is drawn")


def _difference(a: dict, b: dict) -> str:
    """a's mean minus b's and whether it exceeds the seed spread, or why no conclusion is drawn."""
    d = a["mean"] - b["mean"]
    return _unconverged(a, b) or f"{d:+.1%}{_spread(a, b, d)}"


def findings(summary: list[dict], n_train: int | None = None, augmentation: str | None = None) -> list[str]:
    """Plain-language answers to the study's questions, from the summarised numbers (`n_train`: the labelled
    training items at 100%; `augmentation`: what scratch+aug does). A comparison with a run that had not converged
    says so instead of answering."""
    get = {(s["init"], s["protocol"], s["fraction"]): s for s in summary}
    fmt = lambda s: spread_text(s, pct=lambda v: f"{v:.1%}")  # noqa: E731
    out = []
    for frac in (0.1, 0.01):
        s = get.get(("scratch", "finetune", frac))
        if s and s.get("train_mean") is not None:
            gap = s["train_mean"] - s["mean"]
            verdict = "it overfits" if gap > 0.05 else "the train/test gap is small"
            out.append(f"At {frac:.0%} labels the scratch model reaches {s['train_mean']:.1%} train accuracy and "
                       f"{fmt(s)} test accuracy: {verdict} (gap {gap:.1%}).")
    for frac in sorted({k[2] for k in get}):
        a, b = get.get(("scratch+aug", "finetune", frac)), get.get(("scratch", "finetune", frac))
        if a and b:
            d = a["mean"] - b["mean"]
            what = f" ({augmentation})" if augmentation else ""
            if unjudged := _unconverged(a, b):
                out.append(f"Augmentation{what} at {frac:.0%} labels: {fmt(b)} -> {fmt(a)}; {unjudged}.")
                continue
            verdict = "improves" if d > 0 else "lowers"
            out.append(f"Augmentation{what} {verdict} scratch test accuracy at {frac:.0%} labels: {fmt(b)} -> "
                       f"{fmt(a)} ({d:+.1%}{_spread(a, b, d)}).")
    for frac in sorted({k[2] for k in get}):  # the question "how much does SSL add over training from scratch?"
        ssl = [v for k, v in get.items() if k[0] == "ssl" and k[2] == frac]
        b = get.get(("scratch", "finetune", frac))
        if ssl and b:
            s = max(ssl, key=lambda v: v["mean"])
            d = s["mean"] - b["mean"]
            unjudged = _unconverged(s, b)
            verdict = f"; {unjudged}" if unjudged else f" {'adds' if d > 0 else 'loses'} {abs(d):.1%}{_spread(s, b, d)}"
            out.append(f"Against the same network trained from scratch at {frac:.0%} labels ({fmt(b)}), SSL pretraining "
                       f"(best protocol: {s['protocol']}, {fmt(s)}){verdict}.")
    for frac in sorted({k[2] for k in get}):  # where a pretrained foundation model stands
        found = [v for k, v in get.items() if k[0] == "foundation" and k[2] == frac]
        if found:
            f = max(found, key=lambda v: v["mean"])
            best = lambda init: max((v for k, v in get.items() if k[0] == init and k[2] == frac),  # noqa: E731
                                    key=lambda v: v["mean"], default=None)
            parts = [f"{name} {fmt(v)} ({f['mean'] - v['mean']:+.1%}{_spread(f, v, f['mean'] - v['mean'])})"
                     for name, v in (("adapted (continued pretraining)", best("adapted")),
                                     ("own SSL", best("ssl")),
                                     ("scratch", get.get(("scratch", "finetune", frac)))) if v]
            out.append(f"The foundation model at {frac:.0%} labels (best protocol: {f['protocol']}, {fmt(f)}) against "
                       + ("; ".join(parts) or "nothing else measured") + ".")
    for frac in sorted({k[2] for k in get}):
        ssl = sorted((v for k, v in get.items() if k[0] == "ssl" and k[2] == frac), key=lambda v: -v["mean"])
        base = [v for k, v in get.items() if k[0] != "ssl" and k[2] == frac]
        if ssl and base:
            b = max(base, key=lambda v: v["mean"])
            head = (f"SSL pretraining at {frac:.0%} labels, against the best baseline ({b['init']} {b['protocol']} "
                    f"{fmt(b)})")
            if unjudged := _unconverged(b):
                out.append(f"{head}: {unjudged}.")
                continue
            out.append(f"{head}: " + "; ".join(f"{s['protocol']} {fmt(s)} ({_difference(s, b)})" for s in ssl) + ".")
    for s in summary:  # how much the pretraining run itself moves the figures
        if s.get("pretrain_runs") and s["fraction"] == min(k[2] for k in get):
            out.append(f"Over {s['pretrain_runs']} pretraining runs, {s['init']} {s['protocol']} at {s['fraction']:.0%} "
                       f"labels has means that spread by {s['pretrain_std']:.1%} (std of the runs' means; "
                       f"{fmt(s)} over all).")
    return out + label_efficiency(summary, n_train)


def label_efficiency(summary: list[dict], n_train: int | None = None) -> list[str]:
    """Two findings on how far each starting point goes with few labels: the share of the gap between scratch at the
    smallest and at the largest label fraction that each initialisation's best row recovers at the smallest; and
    how many labels the best SSL row needs to match scratch at the largest fraction (linear in log-fraction between
    the two measured fractions around it; `n_train` labelled items at 100%)."""
    get = {(s["init"], s["protocol"], s["fraction"]): s for s in summary}
    fracs = sorted({k[2] for k in get})
    if len(fracs) < 2:
        return []
    lo, hi = fracs[0], fracs[-1]
    a, b = get.get(("scratch", "finetune", lo)), get.get(("scratch", "finetune", hi))
    if not a or not b or b["mean"] <= a["mean"]:
        return []
    pct = lambda v: f"{v:.1%}"  # noqa: E731
    best = lambda init, f: max((v for k, v in get.items() if k[0] == init and k[2] == f),  # noqa: E731
                               key=lambda v: v["mean"], default=None)
    parts = []
    for init in dict.fromkeys(k[0] for k in get if k[0] != "scratch"):
        v = best(init, lo)
        if v:
            parts.append(f"{init} ({v['protocol']}, {pct(v['mean'])}) {(v['mean'] - a['mean']) / (b['mean'] - a['mean']):.0%}")
    out = [f"Label efficiency: of the gap between scratch at {lo:.0%} labels ({pct(a['mean'])}) and at {hi:.0%} "
           f"({pct(b['mean'])}), the best row of each starting point at {lo:.0%} recovers " + "; ".join(parts) + "."]
    curve = [(f, best("ssl", f)) for f in fracs if best("ssl", f)]
    if curve:
        count = lambda f: f" ({f * n_train:,.0f} labels)" if n_train else ""  # noqa: E731
        reached = next((i for i, (f, v) in enumerate(curve) if v["mean"] >= b["mean"]), None)
        if reached is None:
            f, v = curve[-1]
            out.append(f"The best SSL row does not reach scratch at {hi:.0%} labels ({pct(b['mean'])}) at any measured "
                       f"fraction (at {f:.0%}: {v['protocol']} {pct(v['mean'])}).")
        elif reached == 0:
            f, v = curve[0]
            out.append(f"The best SSL row matches scratch at {hi:.0%} labels ({pct(b['mean'])}) already at {f:.0%}"
                       f"{count(f)}: {v['protocol']} {pct(v['mean'])}.")
        else:
            (f0, v0), (f1, v1) = curve[reached - 1], curve[reached]
            t = (b["mean"] - v0["mean"]) / (v1["mean"] - v0["mean"])
            f = math.exp(math.log(f0) + t * (math.log(f1) - math.log(f0)))
            out.append(f"The best SSL row matches scratch at {hi:.0%} labels ({pct(b['mean'])}) at about {f:.1%} of the "
                       f"labels{count(f)}, interpolated between {f0:.0%} ({pct(v0['mean'])}) and {f1:.0%} "
                       f"({pct(v1['mean'])}).")
    return out


def _spread(a: dict, b: dict, d: float) -> str:
    """Whether a difference `d` between two summarised groups exceeds their combined seed spread."""
    if min(a["n"], b["n"]) < 2:
        return ", one seed: spread not measured"
    return ", beyond the seed spread" if abs(d) > a["std"] + b["std"] else ", within the seed spread"


def assemble(results: dict) -> dict:
    results["summary"] = summarize(results)
    data = results.get("data") or {}
    labels = data["n_train"] - data.get("n_val", 0) if data.get("n_train") else None  # labelled items at 100%
    results["findings"] = findings(results["summary"], labels, results.get("augmentation"))
    return results


def save_results(out: Path, results: dict) -> Path:
    atomic_write(out / "results.json", json.dumps(results, indent=1).encode())
    return write_report(out, results)


def _data_info(splits) -> dict:
    tr = splits.train
    return {"name": tr.name, "kind": tr.kind, "unit": tr.unit, "n_train": len(tr), "n_test": len(splits.test) if splits.test else 0,
            "classes": list(tr.classes), **kind_adapter(tr.kind).describe(tr)}


def _evaluated(splits, ev: dict) -> dict:
    """What the results say of the evaluated data: `_data_info` and the validation items held out of it, and what
    the scratch+aug baseline's augmentation does."""
    return {"data": {**_data_info(splits), "n_val": ev.get("val_items", 0)},
            "augmentation": kind_adapter(splits.train.kind).AUG_NOTE}


def _fresh(info: dict):
    """A randomly initialised encoder of the run's architecture (the scratch baselines)."""
    return lambda seed: method_from_info(info).encoder()


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def load_foundation(spec: str, kind: str, context: int | None = None, meta: dict | None = None,
                    image_size: int | None = None):
    """(encoder, info) of a pretrained starting point: an earlier sslab run (a folder with run.json); for text a
    local Hugging Face model folder (config.json + safetensors weights, its own tokenizer.json); for images
    `torchvision:<architecture>=<weights file>` or `timm:<model>=<weights file>` (`meta`: the data's description)."""
    path = Path(spec).expanduser()
    if (path / "run.json").is_file():
        run_kind = read_run_info(path).get("kind", "image")
        if run_kind != kind:
            raise SslabError(f"--from {spec}: a run on {run_kind} data, the study is on {kind} data")
        encoder, info = load_encoder(path)
        return encoder, {**info, "foundation": str(path)}
    if kind == "image":
        from sslab.methods.base import ImageEncoder
        from sslab.nets.image import pretrained_backbone

        if not str(spec).startswith(("torchvision:", "timm:")):
            raise SslabError(f"--from {spec}: for images give an earlier sslab run (a folder with run.json), "
                             "torchvision:<architecture>=<weights file> or timm:<model>=<weights file>")
        backbone, desc = pretrained_backbone(str(spec), image_size)
        info = {**(meta or {}), "kind": "image", "method": "foundation", "backbone": desc, "foundation": str(spec)}
        return ImageEncoder(backbone).eval(), info
    if kind != "text":
        raise SslabError(f"--from {spec}: for {kind} data --from takes an earlier sslab run (a folder with run.json)")
    from sslab.methods.text import foundation_encoder

    encoder, info, _ = foundation_encoder(path, context or 128)
    return encoder, info


def _evaluate(label: str, show_progress: bool, encoder, info: dict, splits, cfg: EvalConfig, log, **kw) -> dict:
    """`evaluate_encoder` under a progress bar named `label` (closed whatever happens)."""
    progress = Progress(label, show_progress)
    try:
        return evaluate_encoder(encoder, info, splits, cfg, log, progress=progress, **kw)
    finally:
        progress.close()


# the sslab method that continues a pretrained text model of each HF architecture
CONTINUE_TEXT = {"bert": "bert", "roberta": "roberta", "gpt2": "gpt", "t5": "t5"}
ADAPT_TEXT_LR = 1e-4  # the peak rate of domain-adaptive pretraining in Gururangan et al. 2020 (RoBERTa-base)


def adapt_config(cfg: StudyConfig, kind: str):
    """The pretraining settings that continue the foundation model on the task's unlabelled data, or the reason
    none apply (a string). Images: the study's method and recipe. Text: the method of the model's architecture,
    with its own recipe when that is not the study's method; the study's budget, seed and devices either way."""
    spec = cfg.foundation
    if kind == "image":
        if not str(spec).startswith(("torchvision:", "timm:")):
            return "an sslab run is continued by pretraining it again (sslab pretrain --resume)"
        return cfg.pretrain.model_copy(update={"backbone": spec, "lr": cfg.adapt_lr or cfg.pretrain.lr / 10,
                                               "foundation_image_size": cfg.foundation_image_size})
    folder = Path(spec).expanduser().resolve()
    if (folder / "run.json").is_file():
        return "an sslab run is continued by pretraining it again (sslab pretrain --resume)"
    from sslab.config import PretrainConfig, load_config
    from sslab.nets.text import load_hf_config

    config = load_hf_config(folder)
    method = CONTINUE_TEXT.get(getattr(config, "model_type", None))
    if method is None:
        return f"sslab has no pretraining method for {getattr(config, 'model_type', 'these')} models"
    base = cfg.pretrain if method == cfg.pretrain.method else load_config(PretrainConfig, method).model_copy(
        update={k: getattr(cfg.pretrain, k) for k in ("budget", "epochs", "seed", "devices", "num_nodes",
                                                       "accelerator", "precision", "strategy")})
    longest = getattr(config, "max_position_embeddings", None)
    context = base.context or 128
    if longest is not None and context > longest - 2:
        return f"context {context} is longer than {folder.name} takes ({longest} positions)"
    return base.model_copy(update={"backbone": str(folder), "lr": cfg.adapt_lr or ADAPT_TEXT_LR, "vocab_size": None})


def _pretrain_to(pcfg, cfg: StudyConfig, source, where: Path, root, show_progress: bool):
    """Pretrain on `source` (the study's data or `pretrain_data`, plus its corpus) with settings `pcfg` into
    `where`: (the engine's summary, the prepared data)."""
    prepared = prepare_pretraining(source, pcfg, where, root=root, corpus=cfg.corpus)
    pre = pretrain(prepared.train, pcfg, where, data_spec=cfg.pretrain_data or cfg.data, show_progress=show_progress,
                   val_data=prepared.val)
    return pre, prepared


def adapt_foundation(pcfg, cfg: StudyConfig, splits, source, out: Path, root, log, show_progress, runs: list) -> dict:
    """Domain-adaptive pretraining: the foundation model pretrained further on the unlabelled data own SSL
    pretrains on (`source`: the task's training split, or `pretrain_data`; settings `pcfg` from `adapt_config`, in
    `<out>/adapted`), then every protocol on the task `splits` (rows with init "adapted"). A failure is logged and
    recorded, and the rest of the study stands."""
    if isinstance(pcfg, str):
        log(f"no continued pretraining of the foundation model: {pcfg}")
        return {"skipped": pcfg}
    where = out / "adapted"
    log(f"continued pretraining of the foundation model: {pcfg.method}, lr {pcfg.lr:g}, in {where}")
    try:
        pre, _ = _pretrain_to(pcfg, cfg, source, where, root, show_progress)
        encoder, info = load_encoder(where)
    except SslabError as err:
        log(f"continued pretraining failed: {err}")
        return {"skipped": str(err)}
    log(f"adapted {pre['method']}: {pre['epochs']:.2f} epochs in {pre['seconds']:.0f}s "
        f"({pre['units_per_s']:,.0f} {pre['unit']}/s)")
    aev = _evaluate("evaluate adapted", show_progress, encoder, info, splits,
                    cfg.eval.model_copy(update={"baselines": []}), log, name="adapted")
    runs += aev["runs"]
    return {"method": pre["method"], "lr": pcfg.lr, "epochs": pre["epochs"], "seconds": pre["seconds"],
            "steps": pre.get("steps"), "units_per_s": pre["units_per_s"], "unit": pre["unit"],
            "history": pre.get("history"), "health": aev["health"]}


def more_pretraining(cfg: StudyConfig, pre: dict, source, splits, out: Path, root, log, show_progress,
                     runs: list) -> list[dict]:
    """Pretraining runs 2 .. `cfg.pretrain_seeds` (seeds pretrain.seed + i, in `<out>/pretrain-seed<seed>`), each
    evaluated with every protocol and no baseline; every ssl row says its `pretrain_seed`. Returns each run's
    epochs, time and speed, the first (`pre`, in `out`) included."""
    first = cfg.pretrain.seed
    for r in runs:
        if r["init"] == "ssl":
            r["pretrain_seed"] = first
    out_runs = [{"seed": first, "epochs": pre["epochs"], "seconds": pre["seconds"], "units_per_s": pre["units_per_s"]}]
    for seed in range(first + 1, first + cfg.pretrain_seeds):
        pcfg = cfg.pretrain.model_copy(update={"seed": seed})
        where = out / f"pretrain-seed{seed}"
        more, _ = _pretrain_to(pcfg, cfg, source, where, root, show_progress)
        log(f"pretrained {more['method']} with seed {seed}: {more['epochs']:.2f} epochs in {more['seconds']:.0f}s")
        encoder, info = load_encoder(where)
        ev = _evaluate(f"evaluate seed {seed}", show_progress, encoder, info, splits,
                       cfg.eval.model_copy(update={"baselines": []}), log)
        runs += [{**r, "pretrain_seed": seed} for r in ev["runs"]]
        out_runs.append({"seed": seed, "epochs": more["epochs"], "seconds": more["seconds"],
                         "units_per_s": more["units_per_s"]})
    return out_runs


def _baseline_notes(kind: str) -> str:
    return ("scratch: the same network from random init fine-tuned on the labels; scratch+aug: the same with "
            f"augmentation; {kind_adapter(kind).RAW_NOTE}.")


def study(cfg: StudyConfig, out: str | Path, root=None, command: str = "", log=say, show_progress=True) -> dict:
    """Pretrain on the training split (labels unused), evaluate against the baselines, write the report."""
    t0 = time.time()
    out = Path(out)
    kind = method_kind(cfg.pretrain.method)
    splits = load_data(cfg.data, root, kind=kind)
    if kind == "pairs":
        return pair_study(cfg, splits, out, root, command, log, show_progress, t0)
    check_labelled(splits)
    log(f"data {splits.train.name}: {len(splits.train)} train / {len(splits.test)} test {splits.train.unit}, "
        f"{len(splits.train.classes)} classes")
    source = splits
    if cfg.pretrain_data:  # pretrain on other (unlabelled) data, transfer to the task
        source = load_data(cfg.pretrain_data, root, kind=kind)
        log(f"pretraining data {source.train.name}: {len(source.train)} {source.train.unit}, labels unused")
    meta = splits.train.meta(limit=10000) if kind == "image" else None
    foundation = (load_foundation(cfg.foundation, kind, cfg.pretrain.context, meta, cfg.foundation_image_size)
                  if cfg.foundation else None)
    adapt = adapt_config(cfg, kind) if foundation is not None and cfg.adapt else None  # checked before any training
    pre, prepared = _pretrain_to(cfg.pretrain, cfg, source, out, root, show_progress)
    log(f"pretrained {pre['method']} on {pre['items']} items: {pre['epochs']:.2f} epochs in {pre['seconds']:.0f}s "
        f"({pre['units_per_s']:,.0f} {pre['unit']}/s)")
    encoder, info = load_encoder(out)
    if cfg.pretrain_data and kind == "image":  # the task's images as the pretrained network saw its own
        from sslab.data.image import conform

        shape = splits.train.x.shape[1:]
        splits = conform(splits, info["image_size"], info["in_chans"])
        if shape != splits.train.x.shape[1:]:
            log(f"{splits.train.name} images {'x'.join(map(str, shape))} -> "
                f"{'x'.join(map(str, splits.train.x.shape[1:]))}, as the pretraining images")
    extra = prepared.after(out, info)
    extra["run_evaluations"] = run_evaluations(out, info, root)
    for ev_ in extra["run_evaluations"].values():
        for line in ev_["lines"]:
            log(f"{ev_['title']}: {line}")
    ev = _evaluate("evaluate", show_progress, encoder, info, splits, cfg.eval, log, fresh=_fresh(info))
    if cfg.pretrain_seeds > 1:
        extra["pretrain_runs"] = more_pretraining(cfg, pre, source, splits, out, root, log, show_progress, ev["runs"])
    if foundation is not None:  # the pretrained starting point, frozen and fine-tuned, through the same protocols
        fenc, finfo = foundation
        log(f"foundation model {finfo['foundation']} ({_params(fenc) / 1e6:.1f} M parameters)")
        fev = _evaluate("evaluate foundation", show_progress, fenc, finfo, splits,
                        cfg.eval.model_copy(update={"baselines": []}), log, name="foundation")
        ev["runs"] += fev["runs"]
        extra["foundation"] = {"path": finfo["foundation"], "backbone": finfo["backbone"],
                               "parameters": _params(fenc), "health": fev["health"]}
        if adapt is not None:
            extra["adapted"] = adapt_foundation(adapt, cfg, splits, source, out, root, log, show_progress,
                                                ev["runs"])
    if cfg.pretrain_data:
        extra["pretrain_data"] = _data_info(source)
    results = assemble({
        "sslab_version": __version__, "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": command, "config": cfg.model_dump(), **_evaluated(splits, ev), "pretrain": pre,
        "health": ev["health"], "runs": ev["runs"], **extra,
        "baseline_notes": _baseline_notes(splits.train.kind),
        "timing": {"total_seconds": time.time() - t0, "pretrain_seconds": pre["seconds"]},
    })
    path = save_results(out, results)
    log(f"report: {path}")
    return results


def _save_examples(out: Path, examples: list[dict]) -> list[dict]:
    """Held-out images as PNGs in <out>/plots (for the report) with their top-3 retrieved captions."""
    import io

    from PIL import Image

    saved = []
    for i, ex in enumerate(examples):
        buf = io.BytesIO()
        Image.fromarray(ex["image"]).resize((128, 128), Image.Resampling.BICUBIC).save(buf, format="PNG")
        atomic_write(out / "plots" / f"retrieved_{i}.png", buf.getvalue())
        saved.append({"image": f"plots/retrieved_{i}.png", "truth": ex["truth"],
                      "top": [{"caption": c, "own": own, "score": round(v, 4)} for c, own, v in ex["top"]]})
    return saved


def pair_study(cfg: StudyConfig, splits, out: Path, root, command: str, log, show_progress: bool, t0: float) -> dict:
    """The study on image-text pairs (CLIP): pretrain on the training pairs; retrieval R@1/5/10 both ways on the
    held-out pairs; with `probe_data` (a labelled image set) zero-shot classification with `prompts` and the image
    tower through the harness's protocols and baselines at every label fraction. A named probe set (cifar10, as the
    clip recipe names) that cannot be had (offline, its download failed) is skipped, said in the log and in
    results["probe_skipped"]: it is an extra, never a reason to fail the study; a probe set of one's own (a folder,
    an .npz file) that cannot be read is an error before any training."""
    from sslab.data.image import _ALIASES as IMAGE_NAMES
    from sslab.evaluate.pairs import retrieval_evaluation, zero_shot

    tr, te = splits.train, splits.test
    log(f"data {tr.name}: {len(tr)} train / {len(te)} test images, {len(tr.captions)} / {len(te.captions)} captions"
        + (f"; skipped: {tr.skipped}" if any(tr.skipped.values()) else ""))
    if cfg.foundation or cfg.corpus or cfg.pretrain_data:
        raise SslabError("an image-text study takes no --from, --pretrain-data or corpus (start a tower from pretrained weights with "
                         "--backbone torchvision:<arch>=<weights> or method_args.text_from=<HF folder>)")
    probe, probe_skipped = None, None
    if cfg.probe_data:  # checked before training
        try:
            probe = load_data(cfg.probe_data, root, kind="image")
        except SslabError as err:
            if str(cfg.probe_data).strip().lower() not in IMAGE_NAMES:
                raise
            probe_skipped = f"{cfg.probe_data} could not be loaded: {err}"
            log(f"probe_data skipped ({probe_skipped}): zero-shot classification and the image tower's probes are "
                "not run")
    if probe is not None:
        check_labelled(probe)
        if len(probe.train.classes) < 2:
            raise SslabError(f"{cfg.probe_data}: zero-shot classification needs at least 2 classes")
    pre, _ = _pretrain_to(cfg.pretrain, cfg, splits, out, root, show_progress)  # no corpus or pretrain_data here
    log(f"pretrained {pre['method']} on {pre['items']} images: {pre['epochs']:.2f} epochs in {pre['seconds']:.0f}s "
        f"({pre['units_per_s']:,.0f} {pre['unit']}/s)")
    if pre.get("early_stop"):
        es = pre["early_stop"]
        log(f"weights kept from step {es['kept_step']} (epoch {es['kept_epoch']:.1f}): {es['on']} {es['value']:.4f} "
            "on training images held out" + (" (stopped early)" if es["stopped"] else ""))
    encoder, info = load_encoder(out)
    evals = {"retrieval": retrieval_evaluation(out, info, root, examples=8)}
    runs, health = [], None
    if probe is None:
        if probe_skipped is None:  # a skipped probe was said before training
            log("no probe_data: zero-shot classification and the image tower's probes are not run")
    else:
        from sslab.data.image import as_rgb

        probe = as_rgb(probe, info["image_size"])  # the side and channels the image tower was trained on
        zs = zero_shot(out, probe, cfg.prompts, root)
        evals["zero-shot"] = {"title": f"Zero-shot on {cfg.probe_data}", "values": zs, "lines": [
            f"accuracy {zs['accuracy']:.1%} on {zs['images']} test images against chance {zs['chance']:.1%} "
            f"({zs['classes']} classes; prompts averaged: {' | '.join(zs['prompts'])})"]}
        ev = _evaluate("evaluate", show_progress, encoder, {**info, "kind": "image"}, probe, cfg.eval, log,
                       fresh=_fresh(info))
        runs, health = ev["runs"], ev["health"]
    for ev_ in evals.values():
        for line in ev_["lines"]:
            log(f"{ev_['title']}: {line}")
    examples = _save_examples(out, evals.get("retrieval", {}).pop("examples", []))
    results = assemble({
        "sslab_version": __version__, "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": command, "config": cfg.model_dump(),
        "data": {"name": tr.name, "kind": "pairs", "unit": "images", "n_train": len(tr), "n_test": len(te),
                 "classes": [], "captions": [len(tr.captions), len(te.captions)], "skipped": tr.skipped},
        "probe": _data_info(probe) if probe is not None else None, "probe_skipped": probe_skipped,
        "pretrain": pre, "health": health, "runs": runs,
        "run_evaluations": evals, "retrieval_examples": examples,
        "baseline_notes": _baseline_notes("image") if probe is not None else "",
        "timing": {"total_seconds": time.time() - t0, "pretrain_seconds": pre["seconds"]},
    })
    path = save_results(out, results)
    log(f"report: {path}")
    return results


def evaluate_run(run_dir: str | Path, cfg: EvalConfig, data: str | None = None, root=None, log=say) -> dict:
    """Evaluate a saved pretraining run (its data set unless `data` names another)."""
    run_dir = Path(run_dir)
    encoder, info = load_encoder(run_dir)
    if info.get("kind") == "pairs":  # an image-text run: its image tower on a labelled image set
        if not data:
            raise SslabError(f"{run_dir} is an image-text run: give --data <a labelled image set> for its image "
                             "tower's probes (retrieval: sslab retrieve)")
        from sslab.data.image import as_rgb

        splits = as_rgb(load_data(data, root, kind="image"), info["image_size"])
        info = {**info, "kind": "image"}
    else:
        splits = load_data(data or info["data"], root, kind=info.get("kind", "image"))
    t0 = time.time()
    ev = evaluate_encoder(encoder, info, splits, cfg, log, fresh=_fresh(info))
    prev = {}
    if (run_dir / "results.json").exists():
        try:
            prev = json.loads((run_dir / "results.json").read_text())
        except ValueError:
            prev = {}
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (run_dir / "metrics.jsonl").exists() else []
    inits = {r["init"] for r in ev["runs"]}
    prev = {k: v for k, v in prev.items() if k not in ("foundation", "adapted") or k in inits}  # no stale rows
    results = assemble({
        **prev, "sslab_version": __version__, "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "config": {"pretrain": info["config"], "eval": cfg.model_dump()}, **_evaluated(splits, ev),
        "pretrain": prev.get("pretrain") or {"method": info["method"], "backbone": info["backbone"], "history": history},
        "health": ev["health"], "runs": ev["runs"], "timing": {"eval_seconds": time.time() - t0},
        "run_evaluations": run_evaluations(run_dir, info, root),
        "baseline_notes": _baseline_notes(splits.train.kind),
    })
    save_results(run_dir, results)
    return results


__all__ = ["study", "evaluate_run", "findings", "print_summary", "read_run_info"]
