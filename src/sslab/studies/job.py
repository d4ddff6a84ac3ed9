"""The main job, stage by stage: load the data, plan, pretrain, evaluate every planned run at every label fraction,
summarise and draw findings, write results.json (`sslab.api` adds the report)."""
from __future__ import annotations

import datetime
import json
import math
import re
import time
from pathlib import Path

from sslab.atomic import atomic_write
from sslab.config import EvalConfig, StudyConfig
from sslab.data import load_data
from sslab.engine import load_encoder, load_method, method_from_info, pretrain, read_run_info, run_info
from sslab.errors import SslabError
from sslab.evaluate import (PROTOCOLS, SeedList, check_labelled, check_names, evaluate_encoder, foundation_protocols,
                            kind_adapter, run_evaluations)
from sslab.methods import continuing_method, method_kind, prepare_pretraining
from sslab.methods.text import FOUNDATION_CONTEXT
from sslab.progress import Progress, hms
from sslab.studies.plan import PRETRAIN_SHARE, Plan, settle_skipped
from sslab.studies.summary import assemble
from sslab.version import __version__


def say(line: str) -> None:
    """The study's default log: a line on standard output, flushed (a log file sees it when it happens)."""
    print(line, flush=True)


def save_results(out: Path, results: dict) -> Path:
    """results.json, written atomically (the report layer renders it)."""
    path = out / "results.json"
    atomic_write(path, json.dumps(results, indent=1).encode())
    return path


def _stamp(config: dict, command: str | None = None) -> dict:
    """What every results.json records of how it was made: sslab's version, when, the settings (and the command)."""
    out = {"sslab_version": __version__, "created": datetime.datetime.now().isoformat(timespec="seconds"),
           "config": config}
    return {**out, "command": command} if command is not None else out


def _data_info(splits) -> dict:
    tr = splits.train
    return {"name": tr.name, "kind": tr.kind, "unit": tr.unit, "n_train": len(tr), "n_test": len(splits.test) if splits.test else 0,
            "classes": list(tr.classes), **kind_adapter(tr.kind).describe(tr)}


def _evaluated(splits, ev: dict) -> dict:
    """What the results say of the evaluated data: `_data_info` and the validation items held out of it, and what
    the scratch+aug baseline's augmentation does."""
    return {"data": {**_data_info(splits), "n_val": ev.get("val_items", 0)},
            "augmentation": kind_adapter(splits.train.kind).AUG_NOTE}


def _say_evaluations(evals: dict, log) -> None:
    """Each run-level evaluation's title, then its lines indented under it."""
    for ev in evals.values():
        log(f"{ev['title']}:")
        for line in ev["lines"]:
            log(f"  {line}")


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
    from sslab.methods.text import foundation_encoder, hub_text_encoder

    if not path.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", str(spec)):  # a Hub id: organisation/name
        path = hub_text_encoder(str(spec))

    encoder, info, _ = foundation_encoder(path, context or FOUNDATION_CONTEXT)
    return encoder, info


def foundation_spec(spec: str | None, kind: str, log=say) -> str | None:
    """The foundation model a study compares: `spec` as given; none for "none"; for "auto" (the default) a text
    study's local sentence encoder when one is installed (`local_text_encoder`), else none."""
    if spec in (None, "none"):
        return None
    if spec != "auto":
        return spec
    if kind != "text":
        return None
    from sslab.methods.text import local_text_encoder

    found = local_text_encoder()
    if found is not None:
        log(f"foundation model: the local sentence encoder {found} (--from none leaves it out)")
    return None if found is None else str(found)


def _evaluate(label: str, show_progress: bool, encoder, info: dict, splits, cfg: EvalConfig, log, progress=None,
              **kw) -> dict:
    """`evaluate_encoder` under `progress`, or its own progress bar named `label` (closed whatever happens)."""
    if progress is not None:
        return evaluate_encoder(encoder, info, splits, cfg, log, progress=progress, **kw)
    progress = Progress(label, show_progress)
    try:
        return evaluate_encoder(encoder, info, splits, cfg, log, progress=progress, **kw)
    finally:
        progress.close()


ADAPT_TEXT_LR = 1e-4  # the peak rate of domain-adaptive pretraining in Gururangan et al. 2020 (RoBERTa-base)


def adapt_config(cfg: StudyConfig, kind: str):
    """The pretraining settings that continue the foundation model on the task's unlabelled data, or the reason
    none apply (a string). Images: the study's method and recipe. Text: the method of the model's architecture,
    with its own recipe when that is not the study's method; the study's budget, seed and devices either way."""
    spec = cfg.foundation
    if kind == "image":
        if not str(spec).startswith(("torchvision:", "timm:")):
            return "an sslab run is continued by pretraining it again (sslab pretrain --resume)"
        return cfg.pretrain.model_copy(update={"backbone": spec, "lr": cfg.adapt_lr or cfg.pretrain.lr / 10})
    folder = Path(spec).expanduser().resolve()
    if (folder / "run.json").is_file():
        return "an sslab run is continued by pretraining it again (sslab pretrain --resume)"
    from sslab.config import PretrainConfig, load_config
    from sslab.nets.text import load_hf_config

    config = load_hf_config(folder)
    method = continuing_method(getattr(config, "model_type", None))
    if method is None:
        return f"sslab has no pretraining method for {getattr(config, 'model_type', 'these')} models"
    base = cfg.pretrain if method == cfg.pretrain.method else load_config(PretrainConfig, method).model_copy(
        update={k: getattr(cfg.pretrain, k) for k in ("budget", "epochs", "seed", "devices", "num_nodes",
                                                       "accelerator", "precision", "strategy")})
    longest = getattr(config, "max_position_embeddings", None)
    context = base.context or FOUNDATION_CONTEXT
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


def pretrain_more(cfg: StudyConfig, pcfg, adapt, source, out: Path, root, log, show_progress) -> dict:
    """The pretraining runs beyond the first: seeds pretrain.seed + 1 .. (`cfg.pretrain_seeds`, in
    `<out>/pretrain-seed<seed>`, settings `pcfg` with that seed), and domain-adaptive pretraining of the foundation
    model on the same unlabelled data (settings `adapt` from `adapt_config`, in `<out>/adapted`; a string says why
    there is none). Returns {plan name: (run folder, the engine's summary)}, or for "adapted" {"skipped": why} when
    it could not run (logged; the rest of the study stands)."""
    done: dict = {}
    for i in range(1, cfg.pretrain_seeds):
        seed = pcfg.seed + i
        where = out / f"pretrain-seed{seed}"
        more, _ = _pretrain_to(pcfg.model_copy(update={"seed": seed}), cfg, source, where, root, show_progress)
        log(f"pretrained {more['method']} with seed {seed}: {more['epochs']:.2f} epochs in {more['seconds']:.0f}s")
        done[f"ssl#{i}"] = (where, more)
    if isinstance(adapt, str):
        log(f"no continued pretraining of the foundation model: {adapt}")
        done["adapted"] = {"skipped": adapt}
    elif adapt is not None:
        where = out / "adapted"
        log(f"continued pretraining of the foundation model: {adapt.method}, lr {adapt.lr:g}, in {where}")
        try:
            pre, _ = _pretrain_to(adapt, cfg, source, where, root, show_progress)
            done["adapted"] = (where, pre)
            log(f"adapted {pre['method']}: {pre['epochs']:.2f} epochs in {pre['seconds']:.0f}s "
                f"({pre['units_per_s']:,.0f} {pre['unit']}/s)")
        except SslabError as err:
            log(f"continued pretraining failed: {err}")
            done["adapted"] = {"skipped": str(err)}
    return done


def _adapted_summary(pre: dict, lr: float, health) -> dict:
    return {"method": pre["method"], "lr": lr, "epochs": pre["epochs"], "seconds": pre["seconds"],
            "steps": pre.get("steps"), "units_per_s": pre["units_per_s"], "unit": pre["unit"],
            "history": pre.get("history"), "health": health}


def _baseline_notes(kind: str) -> str:
    return ("scratch: the same network from random init fine-tuned on the labels; scratch+aug: the same with "
            f"augmentation; {kind_adapter(kind).RAW_NOTE}.")


def _calibrate(encoder, info: dict, splits, cfg: EvalConfig) -> dict:
    """Seconds per item of a fine-tune step and of a forward pass of `encoder` on the task's labelled items."""
    from sslab.dist import default_device
    from sslab.evaluate.protocols import step_costs

    data = kind_adapter(info.get("kind", "image")).labelled(splits.train, info)
    return step_costs(encoder, data, len(splits.train.classes), cfg, default_device())


def make_plan(cfg: StudyConfig, splits, encoders: dict, out: Path, t0: float, pretrain_seconds: float | None,
              pretrainings: int, command: str = "") -> Plan:
    """The study's plan over `encoders` ({name: {"encoder", "info", "baselines"}, or {"same_as": name,
    "baselines"}}; each network timed here once)."""
    from sslab.data import validation_split

    val, pool = validation_split(splits.train.y, cfg.eval.val_items)
    timed = {}
    for name, e in encoders.items():  # an entry "same_as" another is the same network: timed once
        order = {k: e[k] for k in ("rank", "defer") if k in e}  # how the plan orders it (Plan._choose)
        if "same_as" in e:
            timed[name] = {**{k: v for k, v in timed[e["same_as"]].items() if k not in ("rank", "defer")},
                           "baselines": e["baselines"], **order}
            continue
        trained = [p for p in e.get("protocols", cfg.eval.protocols)
                   if not PROTOCOLS[p].frozen and PROTOCOLS[p].applies(e["encoder"])]
        timed[name] = {"costs": _calibrate(e["encoder"], e["info"], splits, cfg.eval), "baselines": e["baselines"],
                       "protocols": trained, **order}
    return Plan(cfg, timed, splits.train.y[pool], len(splits.train.classes), len(splits.train), len(splits.test),
                cfg.time_limit, t0, pretrain_seconds, pretrainings, run_dir=str(out), command=command)


def _shared_budget(cfg: StudyConfig, pretrainings: int, budget_fixed: bool):
    """The pretraining settings with the budget each of `pretrainings` runs gets: PRETRAIN_SHARE of the time limit
    shared by them (at most the recipe's budget), unless the user set it (`budget_fixed`)."""
    pcfg = cfg.pretrain
    if cfg.time_limit is not None and pcfg.budget is not None and not budget_fixed:
        pcfg = pcfg.model_copy(update={"budget": min(pcfg.budget, PRETRAIN_SHARE * cfg.time_limit / pretrainings)})
    return pcfg


def study(cfg: StudyConfig, out: str | Path, root=None, command: str = "", log=say, show_progress=True,
          budget_fixed: bool = False) -> dict:
    """The main job, stage by stage: load the data; plan (time a few fine-tune steps of each network, choose the
    runs that fit `cfg.time_limit`, print the plan); pretrain on the training split (labels unused); evaluate every
    planned run; summarise and draw findings; write results.json. `budget_fixed`: the pretraining
    budget was set by the user (--budget) and the plan keeps it; otherwise it gets at most 20% of the limit."""
    t0 = time.time()
    out = Path(out)
    check_names(cfg.eval, "eval.")
    kind = method_kind(cfg.pretrain.method)
    cfg = cfg.model_copy(update={"foundation": foundation_spec(cfg.foundation, kind, log)})
    # 1. data, once
    splits = load_data(cfg.data, root, kind=kind, text_column=cfg.text_column, label_column=cfg.label_column)
    if kind == "pairs":
        return pair_study(cfg, splits, out, root, command, log, show_progress, t0, budget_fixed)
    check_labelled(splits)
    log(f"data {splits.train.name}: {len(splits.train)} train / {len(splits.test)} test {splits.train.unit}, "
        f"{len(splits.train.classes)} classes")
    source = splits
    if cfg.pretrain_data:  # pretrain on other (unlabelled) data, transfer to the task
        source = load_data(cfg.pretrain_data, root, kind=kind)
        log(f"pretraining data {source.train.name}: {len(source.train)} {source.train.unit}, labels unused")
    meta = splits.train.meta(limit=10000) if kind == "image" else None
    foundation = (load_foundation(cfg.foundation, kind, cfg.pretrain.context, meta,
                                  cfg.pretrain.foundation_image_size)
                  if cfg.foundation else None)
    if foundation is not None:  # a Hub id is now a local folder: continued pretraining reads it from there
        cfg = cfg.model_copy(update={"foundation": foundation[1]["foundation"]})
    adapt = adapt_config(cfg, kind) if foundation is not None and cfg.adapt else None  # checked before any training
    # 2. the plan: pretraining time, then the runs that fit
    pretrainings = cfg.pretrain_seeds + (adapt is not None and not isinstance(adapt, str))
    pcfg = _shared_budget(cfg, pretrainings, budget_fixed)
    prepared = prepare_pretraining(source, pcfg, out, root=root, corpus=cfg.corpus)
    n_items = len(prepared.train) if pcfg.max_items is None else min(len(prepared.train), pcfg.max_items)
    info0 = run_info(pcfg, prepared.train.meta(limit=n_items), cfg.pretrain_data or cfg.data)
    if cfg.pretrain_data and kind == "image":  # the task's images as the pretrained network sees its own
        from sslab.data.image import conform

        shape = splits.train.x.shape[1:]
        splits = conform(splits, info0["image_size"], info0["in_chans"])
        if shape != splits.train.x.shape[1:]:
            log(f"{splits.train.name} images {'x'.join(map(str, shape))} -> "
                f"{'x'.join(map(str, splits.train.x.shape[1:]))}, as the pretraining images")
    encoders = {"ssl": {"encoder": method_from_info(info0).encoder(), "info": info0, "baselines": True}}
    for seed in range(1, cfg.pretrain_seeds):  # further pretraining runs: the same network, timed once
        encoders[f"ssl#{seed}"] = {"same_as": "ssl", "baselines": False}
    if foundation is not None:
        # planned first on each subset: the pretrained model is the study's best answer where there is one (SST-2 at
        # 1%: setfit 78% against own SSL's 56%); the adapted model after the next seed of the others
        encoders["foundation"] = {"encoder": foundation[0], "info": foundation[1], "baselines": False,
                                  "protocols": foundation_protocols(cfg.eval), "rank": 0}
        if adapt is not None and not isinstance(adapt, str):
            encoders["adapted"] = {"same_as": "foundation", "baselines": False, "defer": 1.5}
    plan = make_plan(cfg, splits, encoders, out, t0, pcfg.budget, pretrainings, command)
    if "adapted" in encoders and not plan.has_trained("adapted"):  # its pretraining would buy no trained row:
        adapt = "none of its trained runs fits the time limit"  # the time goes to the other rows' runs
        pretrainings -= 1
        plan = plan.without("adapted", pcfg.budget, pretrainings)
    if foundation is not None and not plan.has_runs("foundation"):  # its features would buy no row: the time goes
        why = (f"none of its runs fits the time limit of {hms(cfg.time_limit)} (its features alone take about "  # to
               f"{hms(plan.features_seconds('foundation'))}); a longer --time includes it")  # the others' runs
        log(f"foundation model left out: {why}")
        foundation, extra_foundation = None, {"path": cfg.foundation, "skipped": why}
        if adapt is not None and not isinstance(adapt, str):  # continued pretraining of a model left out
            adapt, pretrainings = "the foundation model was left out", pretrainings - 1
        if "adapted" in plan.encoders:
            plan = plan.without("adapted", pcfg.budget, pretrainings)
        plan = plan.without("foundation", pcfg.budget, pretrainings)
    else:
        extra_foundation = None
    if cfg.time_limit is not None and not any(plan.has_runs(name) for name in plan.encoders):
        raise SslabError(f"--time {hms(cfg.time_limit)} is too short for this study: nothing fits after pretraining "
                         f"and feature extraction; use --time {math.ceil(plan.shortest_limit() / 60)}m or more")
    for line in plan.lines():
        log(line)
    # 3. pretraining: every run before any evaluation
    pre = pretrain(prepared.train, pcfg, out, data_spec=cfg.pretrain_data or cfg.data, show_progress=show_progress,
                   val_data=prepared.val)
    log(f"pretrained {pre['method']} on {pre['items']} items: {pre['epochs']:.2f} epochs in {pre['seconds']:.0f}s "
        f"({pre['units_per_s']:,.0f} {pre['unit']}/s)")
    if adapt is not None and not isinstance(adapt, str):
        adapt = adapt.model_copy(update={"budget": pcfg.budget})  # the same time as own pretraining
    more = pretrain_more(cfg, pcfg, adapt, source, out, root, log, show_progress)
    encoder, info = load_encoder(out)
    extra = prepared.after(lambda: load_method(out)[0], info)
    extra["run_evaluations"] = run_evaluations(out, info, root, splits=source)  # the pretraining data, loaded
    _say_evaluations(extra["run_evaluations"], log)
    # 4. evaluation of every encoder, one progress bar over the plan's work
    progress = Progress("evaluate", show_progress, ends_by=plan.deadline() if cfg.time_limit else None)
    try:
        no_baselines = cfg.eval.model_copy(update={"baselines": []})
        foundation_cfg = no_baselines.model_copy(update={"protocols": foundation_protocols(cfg.eval)})
        fev = None
        if foundation is not None:  # the pretrained starting point first: the plan admitted its runs first (the
            # study's best answer where there is one), so runs that take longer than planned cost own SSL's later
            # subsets, not these (an SST-2 study at --time 4m planned setfit last and dropped it, 2026-12-07)
            fenc, finfo = foundation
            log(f"foundation model {finfo['foundation']} ({_params(fenc) / 1e6:.1f} M parameters)")
            fev = evaluate_encoder(fenc, finfo, splits, foundation_cfg, log, name="foundation", progress=progress,
                                   schedule=plan.bind("foundation"))
        ev = evaluate_encoder(encoder, info, splits, cfg.eval, log, fresh=_fresh(info), progress=progress,
                              schedule=plan.bind("ssl"))
        if cfg.pretrain_seeds > 1:
            for r in ev["runs"]:
                if r["init"] == "ssl":
                    r["pretrain_seed"] = pcfg.seed
            extra["pretrain_runs"] = [{"seed": pcfg.seed, "epochs": pre["epochs"], "seconds": pre["seconds"],
                                       "units_per_s": pre["units_per_s"]}]
            for i in range(1, cfg.pretrain_seeds):
                where, p = more[f"ssl#{i}"]
                enc_i, info_i = load_encoder(where)
                ev_i = evaluate_encoder(enc_i, info_i, splits, no_baselines, log, progress=progress,
                                        schedule=plan.bind(f"ssl#{i}"))
                ev["runs"] += [{**r, "pretrain_seed": pcfg.seed + i} for r in ev_i["runs"]]
                extra["pretrain_runs"].append({"seed": pcfg.seed + i, "epochs": p["epochs"], "seconds": p["seconds"],
                                               "units_per_s": p["units_per_s"]})
        if fev is not None:  # the pretrained starting point, frozen and fine-tuned, through the same protocols
            fenc, finfo = foundation
            ev["runs"] += fev["runs"]
            extra["foundation"] = {"path": finfo["foundation"], "backbone": finfo["backbone"],
                                   "parameters": _params(fenc), "health": fev["health"]}
        if isinstance(more.get("adapted"), dict):
            extra["adapted"] = more["adapted"]
        elif "adapted" in more:
            where, p = more["adapted"]
            aenc, ainfo = load_encoder(where)
            aev = evaluate_encoder(aenc, ainfo, splits, foundation_cfg, log, name="adapted", progress=progress,
                                   schedule=plan.bind("adapted"))
            ev["runs"] += aev["runs"]
            extra["adapted"] = _adapted_summary(p, adapt.lr, aev["health"])
    finally:
        progress.close()
    if extra_foundation is not None:
        extra["foundation"] = extra_foundation
    if cfg.pretrain_data:
        extra["pretrain_data"] = _data_info(source)
    # 5. summary and findings, then results.json
    total = time.time() - t0
    results = assemble({
        **_stamp(cfg.model_copy(update={"pretrain": pcfg}).model_dump(), command),
        **_evaluated(splits, ev), "pretrain": pre, "health": ev["health"], "runs": ev["runs"], **extra,
        "plan": plan.to_dict(),
        "baseline_notes": _baseline_notes(splits.train.kind),
        "timing": {"total_seconds": total, "pretrain_seconds": pre["seconds"], "planned_seconds": plan.eta(),
                   "limit_seconds": cfg.time_limit},
    })
    save_results(out, results)
    log(f"study took {total / 60:.1f} min (planned {plan.eta() / 60:.1f}"
        + (f", limit {cfg.time_limit / 60:.1f})" if cfg.time_limit else ")"))
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


def pair_study(cfg: StudyConfig, splits, out: Path, root, command: str, log, show_progress: bool, t0: float,
               budget_fixed: bool = False) -> dict:
    """The study on image-text pairs (CLIP): pretrain on the training pairs; retrieval R@1/5/10 both ways on the
    held-out pairs; with `probe_data` (a labelled image set) zero-shot classification with `prompts` and the image
    tower through the harness's protocols and baselines at every label fraction. A named probe set (cifar10, as the
    clip recipe names) that cannot be had (offline, its download failed) is skipped, said in the log and in
    results["probe_skipped"]: it is an extra, never a reason to fail the study; a probe set of one's own (a folder,
    an .npz file) that cannot be read is an error before any training. Under a time limit pretraining gets its
    share of it (as in `study`), and the probe's runs are planned in what is left after pretraining; a probe none of
    whose runs fits is skipped like one that cannot be had."""
    from sslab.data.image import IMAGE_SETS as IMAGE_NAMES
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
    pcfg = _shared_budget(cfg, 1, budget_fixed)
    pre, _ = _pretrain_to(pcfg, cfg, splits, out, root, show_progress)  # no corpus or pretrain_data here
    log(f"pretrained {pre['method']} on {pre['items']} images: {pre['epochs']:.2f} epochs in {pre['seconds']:.0f}s "
        f"({pre['units_per_s']:,.0f} {pre['unit']}/s)")
    if pre.get("early_stop"):
        es = pre["early_stop"]
        log(f"weights kept from step {es['kept_step']} (epoch {es['kept_epoch']:.1f}): {es['on']} {es['value']:.4f} "
            "on training images held out" + (" (stopped early)" if es["stopped"] else ""))
    encoder, info = load_encoder(out)
    evals = {"retrieval": retrieval_evaluation(out, info, root, examples=8, splits=splits)}
    runs, health, plan = [], None, None
    if probe is not None:
        from sslab.data.image import as_rgb

        probe = as_rgb(probe, info["image_size"])  # the side and channels the image tower was trained on
        if cfg.time_limit is not None:
            plan = make_plan(cfg, probe, {"ssl": {"encoder": encoder, "info": {**info, "kind": "image"},
                                                  "baselines": True}}, out, t0, None, 1, command)
            if not plan.has_runs("ssl"):
                probe_skipped = (f"none of its runs fits the time limit of {hms(cfg.time_limit)} (its features alone "
                                 f"take about {hms(plan.features_seconds('ssl'))}); a longer --time includes it")
                log(f"probe_data {cfg.probe_data} skipped: {probe_skipped}")
                probe, plan = None, None
            else:
                for line in plan.lines():
                    log(line)
    if probe is None:
        if probe_skipped is None:  # a skipped probe was said before training
            log("no probe_data: zero-shot classification and the image tower's probes are not run")
    else:
        zs = zero_shot(out, probe, cfg.prompts, root)
        evals["zero-shot"] = {"title": f"Zero-shot on {cfg.probe_data}", "values": zs, "lines": [
            f"accuracy {zs['accuracy']:.1%} on {zs['images']} test images against chance {zs['chance']:.1%} "
            f"({zs['classes']} classes; prompts averaged: {' | '.join(zs['prompts'])})"]}
        progress = Progress("evaluate", show_progress, ends_by=plan.deadline() if plan is not None else None)
        try:
            ev = _evaluate("evaluate", show_progress, encoder, {**info, "kind": "image"}, probe, cfg.eval, log,
                           progress, fresh=_fresh(info), schedule=plan.bind("ssl") if plan is not None else None)
        finally:
            progress.close()
        runs, health = ev["runs"], ev["health"]
    _say_evaluations(evals, log)
    examples = _save_examples(out, evals.get("retrieval", {}).pop("examples", []))
    results = assemble({
        **_stamp(cfg.model_copy(update={"pretrain": pcfg}).model_dump(), command),
        "data": {"name": tr.name, "kind": "pairs", "unit": "images", "n_train": len(tr), "n_test": len(te),
                 "classes": [], "captions": [len(tr.captions), len(te.captions)], "skipped": tr.skipped},
        "probe": _data_info(probe) if probe is not None else None, "probe_skipped": probe_skipped,
        "pretrain": pre, "health": health, "runs": runs,
        "run_evaluations": evals, "retrieval_examples": examples,
        "baseline_notes": _baseline_notes("image") if probe is not None else "",
        **({"plan": plan.to_dict()} if plan is not None else {}),
        "timing": {"total_seconds": time.time() - t0, "pretrain_seconds": pre["seconds"],
                   "limit_seconds": cfg.time_limit},
    })
    save_results(out, results)
    total = time.time() - t0
    log(f"study took {total / 60:.1f} min" + (f" (limit {cfg.time_limit / 60:.1f})" if cfg.time_limit else ""))
    return results


def evaluate_run(run_dir: str | Path, cfg: EvalConfig, data: str | None = None, root=None, log=say,
                 seeds: list[int] | None = None, keeper=None) -> dict:
    """Evaluate a saved pretraining run (its data set unless `data` names another). `seeds`: only these label
    subsets of each fraction, every trained run on them (what a study's plan skipped); the run's earlier rows of
    other subsets, protocols and initialisations are kept. `keeper`: an `evaluate.saved.ModelKeeper` that keeps
    the best fine-tuned models."""
    run_dir = Path(run_dir)
    check_names(cfg)
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
    schedule = SeedList(cfg, seeds) if seeds is not None else None
    ev = evaluate_encoder(encoder, info, splits, cfg, log, fresh=_fresh(info), schedule=schedule, keeper=keeper)
    prev = {}
    if (run_dir / "results.json").exists():
        try:
            prev = json.loads((run_dir / "results.json").read_text())
        except ValueError:
            prev = {}
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (run_dir / "metrics.jsonl").exists() else []
    inits = {r["init"] for r in ev["runs"]}
    if seeds is not None:  # added to what was measured before: a row measured again replaces its old one
        key = lambda r: (r["init"], r["protocol"], r["fraction"], r["seed"], r.get("pretrain_seed"))  # noqa: E731
        new = {key(r) for r in ev["runs"]}
        ev["runs"] = [r for r in prev.get("runs", []) if key(r) not in new] + ev["runs"]
        inits |= {r["init"] for r in ev["runs"]}
        if isinstance(prev.get("plan"), dict):  # what the study skipped and this command ran is no longer skipped
            prev["plan"] = {**prev["plan"], "skipped": settle_skipped(prev["plan"].get("skipped") or [], ev["runs"])}
    prev = {k: v for k, v in prev.items() if k not in ("foundation", "adapted") or k in inits}  # no stale rows
    results = assemble({
        **prev, **_stamp({"pretrain": info["config"], "eval": cfg.model_dump()}), **_evaluated(splits, ev),
        "pretrain": prev.get("pretrain") or {"method": info["method"], "backbone": info["backbone"], "history": history},
        "health": ev["health"], "runs": ev["runs"], "timing": {"eval_seconds": time.time() - t0},
        "run_evaluations": run_evaluations(run_dir, info, root, splits=None if data else splits),
        "baseline_notes": _baseline_notes(splits.train.kind),
    })
    save_results(run_dir, results)
    return results


__all__ = ["study", "evaluate_run", "save_results"]
