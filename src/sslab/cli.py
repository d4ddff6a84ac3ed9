"""`sslab` command line: a thin shell over the Python API (sslab.study, sslab.pretrain, ...)."""
from __future__ import annotations

import io

import json
import os
import shlex
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import click
import typer

from sslab.errors import SslabError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Self-supervised pretraining and label-efficiency studies.")

DataOpt = typer.Option(None, "--data", help="images: fashion-mnist | cifar10 | digits | an image folder | a .npz file; "
                       "text: sst2 | trec | tinyshakespeare | wikitext-2 | a .txt/.csv/.tsv/.jsonl file, glob or folder")
CorpusOpt = typer.Option(None, "--corpus", help="extra unlabelled text files to pretrain on (repeatable)")
TextColumnOpt = typer.Option(None, "--text-column", help="text data: the column holding the text (a header name or "
                             "a number from 1; default: a known name, else the column of the longest free text)")
LabelColumnOpt = typer.Option(None, "--label-column", help="text data: the column holding the class labels (a header "
                              "name or a number from 1; default: a known name, else the column of few distinct "
                              "short values)")
ImageSizeOpt = typer.Option(None, "--image-size", min=8, help="the side images are decoded at (image folders, "
                            "WebDataset shards, image-text pairs; default: a folder's median shorter side, at most 64)")
RootOpt = typer.Option(None, "--data-root", help="where data sets are looked for / downloaded (env SSLAB_DATA_ROOT)")
ConfigOpt = typer.Option(None, "--config", help="YAML recipe file (or a recipe name)")
OverridesArg = typer.Argument(None, help="key=value overrides, e.g. pretrain.lr=1e-3 eval.seeds=5")


def _out_dir(out: Optional[Path], default_name: str, resume: bool | None = False, overwrite: bool = False) -> Path:
    """An explicit --out must be new (or --resume/--overwrite; `resume` None: the command has no --resume);
    without one, pick runs/<name>[-N]."""
    if out is not None:
        if out.exists() and not out.is_dir():
            raise SslabError(f"output path {out} exists and is not a folder")
        if out.exists() and any(out.iterdir()) and not (resume or overwrite):
            raise SslabError(f"output folder {out} already holds files; use "
                             f"{'' if resume is None else '--resume, '}--overwrite or another --out")
        if resume and not (out / "checkpoint").exists():
            raise SslabError(f"nothing to resume in {out} (no checkpoint)")
        return out
    base = Path("runs") / default_name
    out, i = base, 1
    while out.exists():
        i += 1
        out = base.with_name(f"{base.name}-{i}")
    return out


def _writable(out: Path) -> None:
    parent = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):  # false on a read-only mount even for root
        read_only = hasattr(os, "statvfs") and bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
        raise SslabError(f"cannot write to {parent}: {'read-only file system' if read_only else 'permission denied'}")


@contextmanager
def _remove_if_failed(out: Path):
    """A run folder this command creates is removed again if the command fails before a checkpoint is complete
    (bad input found late, a full disk at the first checkpoint): nothing half-written is left. A folder that
    existed before, or that holds a complete checkpoint to --resume from, is kept."""
    existed = out.exists()
    try:
        yield
    except BaseException:
        from sslab.checkpoint import has_checkpoint

        if not existed and not has_checkpoint(out / "checkpoint"):
            shutil.rmtree(out, ignore_errors=True)
        raise


@contextmanager
def _stopped_by_signal(hint: str = ""):
    """A run that SIGINT/SIGTERM stopped after writing its checkpoint (sslab.engine.Interrupted): its one line (and
    `hint`) on standard error from process 0, and the exit status shells expect for the signal, no traceback."""
    from sslab.dist import rank
    from sslab.engine import Interrupted

    try:
        yield
    except Interrupted as e:
        if rank() == 0:
            typer.echo(f"{e}{hint}", err=True)
        raise typer.Exit(e.exit_code) from None


def _check_data(spec: Optional[str], kind: str) -> None:
    """A data path that is not there, or not readable, fails before the output folder is looked at. The loader is
    asked only about a spec that is neither a path that exists nor a name, glob or shard pattern: it fails at once
    with its own words, having nothing to load."""
    from sslab.data import load_data
    from sslab.data.image import IMAGE_SETS
    from sslab.data.pairs import PAIRS_KNOWN
    from sslab.data.shards import is_shard_spec
    from sslab.data.text import is_text_spec

    s = str(spec or "").strip()
    path = Path(s).expanduser()
    if path.exists():
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            raise SslabError(f"cannot read {path}: permission denied")
    elif not (not s or is_shard_spec(s) or any(c in s for c in "*?[") or s.lower() in IMAGE_SETS
              or s.lower() in PAIRS_KNOWN or is_text_spec(s)):
        load_data(s, kind=kind)


def _check_names(method: str, backbone: str) -> None:
    """Unknown method or backbone names fail before any data is loaded or any file is written."""
    from sslab.methods import METHODS, check_method_name

    check_method_name(method)
    METHODS[method].check_backbone(backbone)


def _check_corpus(method: str, corpus) -> None:
    """Extra unlabelled text is for text methods: an image method would silently ignore it."""
    from sslab.methods import method_kind

    if corpus and method_kind(method) != "text":
        raise SslabError(f"--corpus adds unlabelled text for text methods; {method} trains on "
                         f"{method_kind(method)} data")


def _check_columns(method: str, text_column, label_column) -> None:
    """--text-column / --label-column name the columns of a text file: an image or pairs method has none."""
    from sslab.methods import method_kind

    if (text_column is not None or label_column is not None) and method_kind(method) != "text":
        raise SslabError(f"--text-column / --label-column name the columns of a text file; {method} trains on "
                         f"{method_kind(method)} data")


def _pretrain_overrides(method, backbone, budget, epochs, seed, batch_size, devices, num_nodes, accelerator, prefix=""):
    pairs = {"method": method, "backbone": backbone, "budget": budget, "epochs": epochs, "seed": seed,
             "batch_size": batch_size, "devices": devices, "num_nodes": num_nodes, "accelerator": accelerator}
    return [f"{prefix}{k}={v}" for k, v in pairs.items() if v is not None]


def _recipe(config: Optional[Path], method: Optional[str]) -> Optional[Path]:
    """Without --config, a method's own recipe (sslab/recipes/<method>.yaml) supplies its defaults."""
    from sslab.config import RECIPES

    if config is not None:
        return config
    recipe = RECIPES / f"{method or 'vicreg'}.yaml"
    return recipe if recipe.is_file() else None


def _recipe_data(config: Optional[Path], method: str) -> Optional[str]:
    """The data set a study recipe (--config, else the method's own) names in its top-level `data:`, if any (a
    recipe of pretraining settings alone names none)."""
    import yaml

    from sslab.config import recipe_path

    recipe = _recipe(config, method)
    try:
        loaded = yaml.safe_load(recipe_path(recipe).read_text()) if recipe is not None else None
    except (OSError, yaml.YAMLError):
        return None
    return loaded.get("data") if isinstance(loaded, dict) and isinstance(loaded.get("data"), str) else None


def _default_method(data: Optional[str], config: Optional[Path]) -> Optional[str]:
    """Without --method (and --config): CLIP for image-text pairs (flickr8k-1k, a captions file, a folder with one
    or COCO's layout), GPT for text data (a named text set, a text file or glob, a folder of <class>/*.txt: at this
    scale its features probe best of the text methods, README), else the recipe default (VICReg for images)."""
    if data is None or config is not None:
        return None
    from sslab.data.pairs import is_pairs_spec
    from sslab.data.shards import has_captions, is_shard_spec
    from sslab.data.text import is_text_spec

    if is_pairs_spec(data) or (is_shard_spec(data) and has_captions(data)):  # images with captions
        return "clip"

    from sslab.data.parquet import parquet_kind

    if parquet_kind(data) == "text":  # the Hub's Parquet files of text
        return "gpt"
    folder = Path(data).expanduser()
    if folder.is_dir() and not any(folder.glob("*/*.txt")):  # loose .txt files beside no classes: not a text set
        return None
    return "gpt" if is_text_spec(data) else None


def _study_log(line: str) -> None:
    """The study's log less its `report:` line, which the command prints last, after the summary."""
    if not line.startswith("report: "):
        typer.echo(line)


def _command() -> str:
    return "sslab " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@app.command()
def study(
    data: Optional[str] = DataOpt,
    image_size: Optional[int] = ImageSizeOpt,
    method: Optional[str] = typer.Option(None, help="pretext method (sslab methods lists them)"),
    backbone: Optional[str] = typer.Option(None, help="backbone name (resnet-xs, resnet-s, resnet18, timm:<name>)"),
    time: Optional[str] = typer.Option(None, "--time", help="the whole study's time limit, e.g. 5m, 15m (the "
                                       "default), 2h, or none: a plan made before any training fits the runs to "
                                       "it (pretraining gets at most 20%)"),
    budget: Optional[str] = typer.Option(None, help="pretraining wall-clock budget, e.g. 5m (default: the "
                                         "recipe's, at most 20% of --time)"),
    epochs: Optional[float] = typer.Option(None, help="pretraining epochs (instead of a budget)"),
    seed: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    labels: Optional[str] = typer.Option(None, help="label fractions and counts per class, e.g. 0.01,0.1,1.0 or "
                                         "8/class,0.01 (8 = 8 labels of every class)"),
    seeds: Optional[int] = typer.Option(None, help="evaluation seeds per label fraction"),
    protocol: Optional[str] = typer.Option(None, help="evaluation protocols, e.g. linear,finetune,setfit (default: "
                                           "the recipe's; sslab.evaluate's registry lists them)"),
    baselines: Optional[str] = typer.Option(None, help="baselines, e.g. scratch,scratch+aug,scratch+fixmatch,raw, or "
                                            "'none' (default: the recipe's)"),
    out: Optional[Path] = typer.Option(None, help="run folder (default runs/<data>-<method>)"),
    overwrite: bool = typer.Option(False, help="reuse an existing --out folder"),
    corpus: Optional[List[str]] = CorpusOpt,
    text_column: Optional[str] = TextColumnOpt,
    label_column: Optional[str] = LabelColumnOpt,
    pretrain_data: Optional[str] = typer.Option(None, "--pretrain-data", help="pretrain on this data set instead "
                                                "(labels unused: an unlabelled image folder, another named set, a "
                                                "text corpus), then transfer to --data"),
    from_: Optional[str] = typer.Option(None, "--from", help="a pretrained starting point to compare: a local Hugging "
                                        "Face text model folder (config.json + safetensors) or Hub id (text studies "
                                        "find the local sentence encoder by default; 'none' leaves it out), "
                                        "torchvision:<architecture>=<weights file> or timm:<model>=<weights file> "
                                        "for images, or an earlier sslab run"),
    config: Optional[Path] = ConfigOpt,
    data_root: Optional[Path] = RootOpt,
    overrides: Optional[List[str]] = OverridesArg,
):
    """Pretrain, evaluate at 1%/10%/100% labels against the baselines, write report.html."""
    from sslab.config import StudyConfig, load_config
    from sslab.evaluate import check_names as check_eval_names
    from sslab.methods import method_kind
    from sslab.report import print_summary
    from sslab.api import study as run_study

    method = method or _default_method(data, config)
    ov = _pretrain_overrides(method, backbone, budget, epochs, seed, batch_size, None, None, None, "pretrain.")
    if image_size is not None:
        ov.append(f"pretrain.image_size={image_size}")
    if epochs is not None:
        ov.append("pretrain.budget=null")
    if data is not None:
        ov.append(f"data={data}")
    if corpus:
        ov.append("corpus=[" + ",".join(json.dumps(str(c)) for c in corpus) + "]")
    for key, value in (("text_column", text_column), ("label_column", label_column)):
        if value is not None:
            ov.append(f"{key}={json.dumps(str(value))}")
    if labels is not None:
        from sslab.config import parse_labels

        ov.append(f"eval.fractions={parse_labels(labels)}")
    if seeds is not None:
        ov.append(f"eval.seeds={seeds}")
    if protocol is not None:
        ov.append(f"eval.protocols=[{'' if protocol == 'none' else protocol}]")
        ov.append("eval.foundation_protocols=null")  # the named protocols for every encoder
    if baselines is not None:
        ov.append(f"eval.baselines=[{'' if baselines == 'none' else baselines}]")
    if from_ is not None:
        ov.append(f"foundation={json.dumps(str(from_))}")
    if pretrain_data is not None:
        ov.append(f"pretrain_data={json.dumps(str(pretrain_data))}")
    if time is not None:
        ov.append(f"time_limit={json.dumps(time)}")
    cfg = load_config(StudyConfig, _recipe(config, method), ov + list(overrides or []))
    _check_names(cfg.pretrain.method, cfg.pretrain.backbone)
    _check_corpus(cfg.pretrain.method, cfg.corpus)
    _check_columns(cfg.pretrain.method, cfg.text_column, cfg.label_column)
    check_eval_names(cfg.eval, "eval.")
    kind = method_kind(cfg.pretrain.method)
    for spec in [cfg.data, cfg.pretrain_data, *(cfg.corpus or [])]:
        _check_data(spec, kind)
    name = f"{Path(cfg.data).name or 'data'}-{cfg.pretrain.method}"
    out_dir = _out_dir(out, name, resume=None, overwrite=overwrite)
    _writable(out_dir)
    with _stopped_by_signal(), _remove_if_failed(out_dir):
        fixed = budget is not None or epochs is not None or any(o.startswith("pretrain.budget=")
                                                                 for o in overrides or [])
        results = run_study(cfg, out_dir, root=data_root, command=_command(), budget_fixed=fixed, log=_study_log)
    print_summary(results)
    for line in results["findings"]:
        typer.echo(f"- {line}")
    typer.echo(f"report: {out_dir / 'report.html'}")


@app.command()
def pretrain(
    data: Optional[str] = DataOpt,
    image_size: Optional[int] = ImageSizeOpt,
    method: Optional[str] = typer.Option(None),
    backbone: Optional[str] = typer.Option(None),
    budget: Optional[str] = typer.Option(None, help="wall-clock budget, e.g. 5m"),
    epochs: Optional[float] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    devices: Optional[str] = typer.Option(None, help="devices per node (Lightning Fabric)"),
    num_nodes: Optional[int] = typer.Option(None),
    accelerator: Optional[str] = typer.Option(None, help="auto | cpu | cuda | mps"),
    out: Optional[Path] = typer.Option(None),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    overwrite: bool = typer.Option(False),
    corpus: Optional[List[str]] = CorpusOpt,
    text_column: Optional[str] = TextColumnOpt,
    label_column: Optional[str] = LabelColumnOpt,
    config: Optional[Path] = ConfigOpt,
    data_root: Optional[Path] = RootOpt,
    overrides: Optional[List[str]] = OverridesArg,
):
    """Pretrain an encoder with a self-supervised method; writes backbone.safetensors and checkpoints."""
    from sslab.config import PretrainConfig, load_config
    from sslab.data import load_data
    from sslab.engine import pretrain as run_pretrain
    from sslab.methods import method_kind, prepare_pretraining

    method = method or (None if resume else _default_method(data, config))
    ov = _pretrain_overrides(method, backbone, budget, epochs, seed, batch_size, devices, num_nodes, accelerator)
    if epochs is not None:
        ov.append("budget=null")
    if image_size is not None:
        ov.append(f"image_size={image_size}")
    if resume and out is not None and (out / "run.json").exists():
        try:
            run_json = json.loads((out / "run.json").read_text())
            base, run_data = dict(run_json["config"]), run_json["data"]
        except (OSError, ValueError, KeyError, TypeError):
            raise SslabError(f"cannot resume {out}: its run.json is unreadable") from None
    else:
        base = run_data = None
    cfg = load_config(PretrainConfig, config if base else _recipe(config, method), ov + list(overrides or []),
                      base=base)
    _check_names(cfg.method, cfg.backbone)
    _check_corpus(cfg.method, corpus)
    _check_columns(cfg.method, text_column, label_column)
    from sslab.methods import method_kind as _kind

    data = data or run_data or _recipe_data(config, cfg.method) or (
        "fashion-mnist" if _kind(cfg.method) == "image" else "wikitext-2")
    for spec in [data, *(corpus or [])]:
        _check_data(spec, _kind(cfg.method))
    out_dir = _out_dir(out, f"{Path(data).name}-{cfg.method}", resume=resume, overwrite=overwrite)
    _writable(out_dir)
    splits = load_data(data, data_root, kind=method_kind(cfg.method), text_column=text_column,
                       label_column=label_column, image_size=cfg.image_size)
    again = f"the same command{'' if resume else ' with --resume'}{'' if out else f' and --out {out_dir}'}"
    with _stopped_by_signal(f"; to continue, run {again}"), _remove_if_failed(out_dir):
        prepared = prepare_pretraining(splits, cfg, out_dir, data_root, corpus)
        res = run_pretrain(prepared.train, cfg, out_dir, resume=resume, data_spec=data, val_data=prepared.val)
    if res.get("rank", 0) == 0:  # several processes (--devices N): one summary line
        typer.echo(f"{res['method']}: {res['epochs']:.2f} epochs, {res['steps']} steps in {res['seconds']:.0f}s "
                   f"({res['units_per_s']:,.0f} {res['unit']}/s); run saved in {out_dir}")
        if res.get("early_stop"):
            es = res["early_stop"]
            typer.echo(f"weights kept from step {es['kept_step']} (epoch {es['kept_epoch']:.1f}): {es['on']} "
                       f"{es['value']:.4f} on held-out training data" + (" (stopped early)" if es["stopped"] else ""))


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="a pretraining run folder"),
    labels: Optional[str] = typer.Option(None, help="label fractions and counts per class, e.g. 0.01,0.1 or 8/class "
                                         "(default: the config's, "
                                         "0.01,0.1,1.0 without --config)"),
    protocol: Optional[str] = typer.Option(None, help="protocols: knn, linear, finetune, selftrain, setfit, "
                                           "fixmatch, text2text, or 'none' (default: the config's, knn,linear,finetune,"
                                           "fixmatch without --config)"),
    baselines: Optional[str] = typer.Option(None, help="baselines to run beside, or 'none' (default: the config's, "
                                            "scratch,scratch+aug,raw without --config; also scratch+fixmatch); raw: "
                                            "logistic regression on "
                                            "raw pixels (images) or TF-IDF (text)"),
    seeds: Optional[int] = typer.Option(None),
    seed_list: Optional[str] = typer.Option(None, "--seed-list", help="these label-subset seeds only, e.g. 3,4 (what "
                                            "a study's plan skipped); rows measured before for other seeds are kept"),
    data: Optional[str] = typer.Option(None, help="evaluate on another labelled data set of the run's kind (images: "
                                       "the same shape)"),
    save_model: bool = typer.Option(False, "--save-model", help="keep the fine-tuned model (encoder + head) of the "
                                    "best seed of each fraction, finetune and fixmatch, in <run>/models/ (sslab "
                                    "export --model exports it)"),
    config: Optional[Path] = ConfigOpt,
    data_root: Optional[Path] = RootOpt,
    overrides: Optional[List[str]] = OverridesArg,
):
    """Evaluate a pretrained run at label fractions; writes results.json and report.html into the run."""
    from sslab.config import EvalConfig, load_config
    from sslab.report import print_summary
    from sslab.api import evaluate_run

    if not run.is_dir():
        raise SslabError(f"run folder not found: {run}")
    ov = []  # an option overrides the config only when given
    if labels is not None:
        from sslab.config import parse_labels

        ov.append(f"fractions={parse_labels(labels, 'fractions')}")
    if baselines is not None:
        ov.append(f"baselines=[{'' if baselines == 'none' else baselines}]")
    if protocol is not None:
        ov.append(f"protocols=[{'' if protocol == 'none' else protocol}]")
    if seeds is not None:
        ov.append(f"seeds={seeds}")
    cfg = load_config(EvalConfig, config, ov + list(overrides or []))
    only = None
    if seed_list is not None:
        try:
            only = sorted({int(x) for x in seed_list.split(",") if x.strip()})
        except ValueError:
            raise SslabError(f"--seed-list takes whole numbers separated by commas, got {seed_list!r}") from None
        if not only or min(only) < 0:
            raise SslabError(f"--seed-list takes seeds >= 0, got {seed_list!r}")
    results = evaluate_run(run, cfg, data, data_root, seeds=only, save_model=save_model)
    print_summary(results)
    typer.echo(f"report: {run / 'report.html'}")


@app.command()
def report(run: Path = typer.Argument(..., help="a run folder with results.json")):
    """(Re)build report.html from a run's saved results.json."""
    from sslab.report import write_report

    if not run.is_dir():
        raise SslabError(f"run folder not found: {run}")
    typer.echo(f"report: {write_report(run)}")


@app.command()
def energy(
    run: Path = typer.Argument(..., help="a pretraining run folder"),
    a: Path = typer.Argument(..., help="first image file"),
    b: str = typer.Argument(..., help="second image file (a caption, in quotes, for a clip run)"),
):
    """Compatibility energy of two images under a run's method, or of an image and a caption under a CLIP run
    (low = compatible, e.g. views of one thing, or a photo and its description)."""
    import torch

    from sslab.data import load_image_files
    from sslab.engine import load_method
    from sslab.methods.base import Energy
    from sslab.views.image import to_float

    if not run.is_dir():
        raise SslabError(f"run folder not found: {run}")
    model, info = load_method(run)
    if info.get("kind") == "pairs":
        from sslab.methods.text import run_tokenizer

        x = to_float(torch.from_numpy(load_image_files([a], 3, info["image_size"])), "cpu")
        with torch.no_grad():
            cos = float(model.net.encode_images(x) @ model.encode_captions(run_tokenizer(info), [b]).T)
        typer.echo(f"energy {1 - cos:.3f} (1 - cosine similarity of the image and caption embeddings; 0 = "
                   f"identical, 2 = opposite; logit {cos * float(model.net.logit_scale.detach().exp()):.2f})")
        return
    b = Path(b)
    if not isinstance(model, Energy) or info.get("kind", "image") != "image":
        raise SslabError(f"{info['method']} runs have no pairwise image energy")
    x = to_float(torch.from_numpy(load_image_files([a, b], info["in_chans"], info["image_size"])), "cpu")
    e = float(model.energy(x[:1], x[1:])[0])
    if model.energy_note:  # a predictive model's own energy (I-JEPA: a prediction error)
        typer.echo(f"energy {e:.4f} ({model.energy_note})")
        return
    typer.echo(f"energy {e:.3f} (cosine similarity {1 - e:.3f} of {info['method']} projections; "
               "0 = identical, 2 = opposite)")


@app.command()
def generate(
    run: Path = typer.Argument(..., help="a GPT pretraining run folder"),
    prompt: str = typer.Option("\n", help="text to continue"),
    tokens: int = typer.Option(200, min=1, help="tokens to generate"),
    temperature: float = typer.Option(1.0, min=0.0, help="sampling temperature (lower: more conservative)"),
    top_k: Optional[int] = typer.Option(None, "--top-k", min=1, help="sample from the k most likely tokens only"),
    seed: int = typer.Option(0),
):
    """Sample a continuation of a prompt from a GPT run."""
    from sslab.engine import load_method
    from sslab.methods.base import Generator
    from sslab.methods.text import run_tokenizer

    if not run.is_dir():
        raise SslabError(f"run folder not found: {run}")
    model, info = load_method(run)
    if not isinstance(model, Generator):
        raise SslabError(f"{info['method']} runs do not generate text (a gpt run does)")
    text = model.generate_text(run_tokenizer(info), prompt, tokens, temperature, top_k, seed)
    typer.echo(prompt + text)


@app.command()
def wordvec(
    run: Path = typer.Argument(..., help="a word2vec / glove run folder, or a word2vec text-format vectors file"),
    similar: Optional[List[str]] = typer.Option(None, "--similar", help="a word whose nearest neighbours to list "
                                                "(repeatable)"),
    analogy: Optional[List[str]] = typer.Option(None, "--analogy", help='e.g. "king - man + woman" (repeatable)'),
    top: int = typer.Option(10, min=1, help="neighbours to list"),
    intrinsic: bool = typer.Option(False, "--evaluate", help="WordSim353 / SimLex-999 Spearman and analogy accuracy"),
    data_root: Optional[Path] = RootOpt,
):
    """Nearest neighbours, analogies and intrinsic scores of word vectors."""
    from sslab.evaluate.wordvec import intrinsic as score
    from sslab.evaluate.wordvec import intrinsic_lines, parse_analogy, run_word_table

    if not (similar or analogy or intrinsic):
        raise SslabError("nothing to do: give --similar WORD, --analogy \"a - b + c\" or --evaluate")
    table = run_word_table(run)
    queries = [([w], []) for w in similar or []] + [parse_analogy(a) for a in analogy or []]
    for (pos, neg), text in zip(queries, list(similar or []) + list(analogy or [])):
        near = table.most_similar(pos, neg, top)
        typer.echo(f"{text}: " + ", ".join(f"{w} {s:.3f}" for w, s in near))
    if intrinsic:
        for line in intrinsic_lines(score(table, data_root)):
            typer.echo(line)


@app.command()
def retrieve(
    run: Path = typer.Argument(..., help="a clip run folder"),
    data: Optional[str] = typer.Option(None, help="image-text pairs (default: the run's own data set)"),
    split: str = typer.Option("test", help="test (the held-out fifth of the images) or train"),
    data_root: Optional[Path] = RootOpt,
):
    """Image-to-text and text-to-image retrieval Recall@1/5/10 of a CLIP run, against chance."""
    from sslab.engine import read_run_info
    from sslab.evaluate.pairs import retrieval_lines, run_retrieval

    for line in retrieval_lines(run_retrieval(run, read_run_info(run), data_root, data, split)):
        typer.echo(line)


@app.command()
def reconstruct(
    run: Path = typer.Argument(..., help="an mae run folder"),
    data: Optional[str] = typer.Option(None, help="images to reconstruct (default: the run's own data set)"),
    images: int = typer.Option(16, min=1, max=256, help="how many test images"),
    out: Optional[Path] = typer.Option(None, help="the PNG to write (default: <run>/reconstruction.png)"),
    seed: int = typer.Option(0, help="the seed of the masks"),
    data_root: Optional[Path] = RootOpt,
):
    """A grid of test images: original, masked input and an MAE run's reconstruction."""
    from PIL import Image

    from sslab.atomic import atomic_write
    from sslab.evaluate.image import reconstruction_grid

    grid = reconstruction_grid(run, data, images, data_root, seed)
    path = out or run / "reconstruction.png"
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")
    atomic_write(path, buf.getvalue())
    typer.echo(f"original / masked / reconstruction of {images} images: {path}")


@app.command()
def zeroshot(
    run: Path = typer.Argument(..., help="a clip run folder"),
    data: str = typer.Option(..., help="a labelled image data set (cifar10, fashion-mnist, a class folder, ...)"),
    prompts: Optional[List[str]] = typer.Option(None, "--prompts", help='a template with {} for the class name, '
                                                'e.g. "a photo of a {}." (repeatable: the prompts are averaged)'),
    limit: Optional[int] = typer.Option(None, min=1, help="classify only the first N test images"),
    data_root: Optional[Path] = RootOpt,
):
    """Zero-shot classification of labelled images by a CLIP run, with prompt ensembling, against chance."""
    from sslab.evaluate.pairs import DEFAULT_PROMPTS, zero_shot

    r = zero_shot(run, data, prompts or DEFAULT_PROMPTS, data_root, limit=limit)
    typer.echo(f"zero-shot accuracy on {r['images']} {data} test images: {r['accuracy']:.1%} (chance "
               f"{r['chance']:.1%}, {r['classes']} classes, {len(r['prompts'])} prompt(s))")


@app.command("export")
def export_command(
    run: Path = typer.Argument(..., help="a pretraining run folder"),
    format: str = typer.Option(..., "--format", help="onnx | torchscript | timm | hf"),
    out: Optional[Path] = typer.Option(None, help="the folder to write (default <run>/export/<format>)"),
    head: Optional[Path] = typer.Option(None, "--head", help="a linear classifier on the encoder's features (a "
                                        ".safetensors file with weight and bias): the export outputs class scores"),
    model: Optional[Path] = typer.Option(None, "--model", help="a fine-tuned model kept by sslab evaluate "
                                         "--save-model (<run>/models/*.safetensors): its encoder and head are "
                                         "exported, class scores out"),
):
    """Export a run's encoder for onnxruntime, TorchScript, timm or Hugging Face, with an export.json describing
    its inputs."""
    from sslab.export import export_run

    folder = export_run(run, format, out, head=head, model=model)
    typer.echo(f"{format} export of {run}: {folder}")


@app.command()
def methods():
    """List the registered methods and backbones."""
    from sslab.methods import METHODS
    from sslab.nets import backbone_names
    from sslab.nets.text import TEXT_SIZES

    for kind in ("image", "text", "pairs"):
        typer.echo(f"{kind} methods: " + ", ".join(sorted(n for n, c in METHODS.items() if c.kind == kind)))
    typer.echo("image backbones: " + ", ".join(backbone_names()))
    typer.echo("text model sizes (--backbone): " + ", ".join(TEXT_SIZES))


def _click_exceptions() -> dict[str, tuple]:
    """Click's exception classes, from click itself and from the copy newer typer versions vendor."""
    mods = [click.exceptions]
    try:
        import typer._click.exceptions as vendored

        mods.append(vendored)
    except ImportError:
        pass
    mods.append(typer)
    return {name: tuple({c for m in mods if (c := getattr(m, name, None)) is not None})
            for name in ("Exit", "Abort", "ClickException")}


_CLICK = _click_exceptions()


def main(argv: list[str] | None = None) -> int:
    """Entry point: one-line errors and a non-zero exit for every user mistake, never a traceback."""
    try:
        code = app(args=argv, standalone_mode=False)
        return code if isinstance(code, int) else 0  # a command's typer.Exit(code), e.g. a run a signal stopped
    except SslabError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except _CLICK["Exit"] as e:
        return e.exit_code
    except _CLICK["Abort"]:
        typer.echo("aborted", err=True)
        return 130
    except _CLICK["ClickException"] as e:
        if e.format_message():
            typer.echo(f"error: {e.format_message()}".replace("\n", " "), err=True)
        return e.exit_code or 2
    except KeyboardInterrupt:
        typer.echo("interrupted; the last checkpoint is kept", err=True)
        return 130
    except OSError as e:
        typer.echo(f"error: {e.strerror or e}{f': {e.filename}' if getattr(e, 'filename', None) else ''}", err=True)
        return 2
    except Exception as e:  # a bug in sslab: still one line, traceback on request
        if os.environ.get("SSLAB_DEBUG"):
            raise
        typer.echo(f"error: internal error {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                   "(set SSLAB_DEBUG=1 for the traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    sys.exit(main())
