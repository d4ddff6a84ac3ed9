"""Run settings as validated pydantic models, loaded from YAML recipes with `key=value` overrides."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from sslab.errors import SslabError

RECIPES = Path(__file__).parent / "recipes"


def parse_duration(value: str | float | int | None) -> float | None:
    """'90' / '90s' / '5m' / '1.5h' -> seconds (> 0)."""
    if value is None or isinstance(value, (int, float)):
        seconds = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(value))
        if not m:
            raise SslabError(f"invalid duration {value!r}; use e.g. 90s, 5m or 1h")
        seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if seconds is not None and seconds <= 0:
        raise SslabError(f"duration must be positive, got {value!r}")
    return seconds


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class PretrainConfig(_Strict):
    method: str = "vicreg"  # the default study (README): measured best at 1% labels per CPU-second
    method_args: dict[str, Any] = Field(default_factory=dict)
    backbone: str = Field("resnet-s2", description="a named network (resnet-s2, timm:<model>, a text size), or "
                          "pretrained weights to continue from: torchvision:<arch>=<file> / timm:<model>=<file> for "
                          "images, a local Hugging Face model folder for text")
    foundation_image_size: int = Field(64, gt=7, description="the side images are resized to for a pretrained "
                                       "torchvision / timm backbone")

    @field_validator("method_args")
    @classmethod
    def _absolute_from(cls, v: dict) -> dict:
        """Pretrained parts named in method_args (clip's text_from) are recorded by absolute path too."""
        return {k: str(Path(x).expanduser().resolve()) if k.endswith("_from") and isinstance(x, str)
                and Path(x).expanduser().is_dir() else x for k, x in v.items()}

    @field_validator("backbone")
    @classmethod
    def _absolute_paths(cls, v: str) -> str:
        """A pretrained starting point is recorded by its absolute path, so a saved run does not depend on the
        directory it was started from."""
        if v.startswith(("torchvision:", "timm:")) and "=" in v:
            head, _, path = v.partition("=")
            p = Path(path).expanduser()
            return f"{head}={p.resolve()}" if p.exists() else v
        p = Path(v).expanduser()
        named = "/" in v or v.startswith("~") or (p / "run.json").is_file() or (p / "config.json").is_file()
        return str(p.resolve()) if named and p.is_dir() else v
    epochs: float | None = Field(None, gt=0)
    early_stop: int | None = Field(None, ge=1, description="stop once the held-out loss has not improved for this "
                                   "many probes (one every log_every steps) and keep the weights of the best probe; "
                                   "the method holds out part of its training data for it (clip: a tenth of the "
                                   "training images), never the test split")
    budget: float | None = Field(330.0, gt=0, description="seconds; training stops cleanly when it is spent")
    batch_size: int = Field(256, gt=1)
    lr: float = Field(4e-3, gt=0, description="learning rate for a global batch of 256 (see lr_scaling)")
    lr_scaling: Literal["linear", "sqrt", "none"] = Field(
        "linear", description="scale lr by (global batch / 256) or its square root, as SimCLR/BYOL/MoCo v3 do")
    weight_decay: float = Field(1e-4, ge=0)
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas (language models: beta2 0.95-0.99)")
    warmup: float = Field(0.05, ge=0, lt=1, description="fraction of the run spent warming up the lr")
    min_lr: float = Field(0.0, ge=0, le=1, description="the cosine schedule ends at this fraction of the lr")
    grad_clip: float | None = Field(None, gt=0, description="clip the global gradient norm to this (None: off)")
    accumulate: int = Field(1, ge=1, description="micro-batches per optimiser step (gradient accumulation)")
    context: int | None = Field(None, gt=1, description="text: tokens per training sequence (None: the method's)")
    vocab_size: int | None = Field(None, gt=1, description="text: tokenizer vocabulary (None: the method's)")
    aug_strength: float = Field(1.0, ge=0)
    crop_scale: tuple[float, float] | None = Field(None, description="random-resized-crop area range; None: views' default")
    max_items: int | None = Field(None, gt=0, validation_alias=AliasChoices("max_items", "max_images"),
                                  description="pretrain on at most this many training items (images, token blocks); "
                                  "max_images is accepted too")
    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = Field(1, ge=1)
    strategy: str = Field("auto", description="Lightning Fabric strategy: auto (DDP for several devices), ddp, "
                          "fsdp (sharded, for big ViTs), deepspeed, ...")
    precision: str | None = None  # None: bf16-mixed on GPU, 32-true on CPU
    channels_last: bool = True
    compile: bool = False
    log_every: int = Field(25, gt=0)
    checkpoint_every: float = Field(60.0, gt=0, description="seconds between checkpoints")
    sync_batchnorm: bool = Field(False, description="with several processes, BatchNorm statistics over the global "
                                 "batch (SyncBatchNorm) instead of each process's share")
    on_nonfinite: Literal["stop", "skip"] = Field(
        "stop", description="a NaN/inf loss or gradient: stop (keeping the last good checkpoint) or skip that batch")
    max_skipped: int = Field(10, gt=0, description="with on_nonfinite=skip, stop after this many bad batches in a row")
    collapse_stop: bool = Field(True, description="stop (keeping the last good checkpoint) when the embedding "
                                "health probe reads 'collapsed' 3 times in a row")
    image_size: int | None = Field(None, gt=7, description="the side images are decoded at (CLI --image-size; the "
                                   "shorter side resized, then centre-cropped): image folders, WebDataset shards, "
                                   "image-text pairs; None: a folder's automatic side (its median shorter side, at "
                                   "most 64), a named set's own, 64 for image-text pairs")
    data_workers: int = Field(2, ge=0, description="WebDataset shards: CPU processes that read and decode them "
                              "(0: the training process itself)")
    shuffle_buffer: int = Field(2000, ge=1, description="WebDataset shards: samples each reading process shuffles "
                                "among (1: the shards' own order, shards shuffled)")
    shard_resample: bool | None = Field(None, description="WebDataset shards: every process draws shards with "
                                        "replacement, an endless stream cut into epochs of the counted samples (or "
                                        "max_items), instead of reading its own shards once per epoch; None: only "
                                        "when there are fewer shards than processes")

    @field_validator("budget", mode="before")
    @classmethod
    def _duration(cls, v):
        return parse_duration(v)


def scaled_lr(cfg: PretrainConfig, global_batch: int) -> float:
    ratio = global_batch / 256
    return cfg.lr * {"linear": ratio, "sqrt": ratio ** 0.5, "none": 1.0}[cfg.lr_scaling]


def per_class(fraction: float) -> bool:
    """Whether a label "fraction" is a count per class (a whole number >= 2; 1 is 100%)."""
    return fraction >= 2 and float(fraction).is_integer()


def label_text(fraction: float) -> str:
    """How a label fraction is written: "1%", "0.5%", "100%", or "8/class" for a count per class."""
    return f"{int(fraction)}/class" if per_class(fraction) else f"{fraction * 100:.3g}%"


def label_order(fraction: float) -> tuple[int, float]:
    """Sort key of label fractions: counts per class first (the fewest labels, as few-label benchmarks report),
    then fractions, each ascending."""
    return (0, fraction) if per_class(fraction) else (1, fraction)


def parse_labels(text: str, key: str = "eval.fractions") -> str:
    """The YAML list of label fractions of a --labels value (the setting `key`): "0.01,0.1,1", counts per class
    "8/class" or "8" (a whole number >= 2), percentages "1%"."""
    out = []
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        try:
            value = (float(part[:-6]) if part.endswith("/class") else float(part[:-1]) / 100 if part.endswith("%")
                     else float(part))
        except ValueError:
            raise SslabError(f"invalid setting {key}: --labels {part!r} is not a number; give fractions (0.01), "
                             "percentages (1%) or counts per class (8 or 8/class)") from None
        if part.endswith("%") and not 0 < value <= 1:
            raise SslabError(f"invalid setting {key}: --labels {part!r}: a percentage must be in (0, 100]")
        if part.endswith("/class") and not per_class(value):
            raise SslabError(f"invalid setting {key}: --labels {part!r}: a count per class must be a whole number "
                             ">= 2")
        out.append(f"{value:g}")
    return "[" + ",".join(out) + "]"


class EvalConfig(_Strict):
    fractions: list[float] = Field([0.01, 0.1, 1.0], description="label fractions in (0, 1], and counts per class "
                                   "(a whole number >= 2: 8 = 8 labelled items of every class)")
    protocols: list[str] = Field(
        ["knn", "linear", "finetune", "fixmatch"], description="fixmatch: consistency training on the unlabelled "
        "training items from the fine-tuned model (not at 100% labels); selftrain distils the fine-tuned model into a "
        "fresh copy of the pretrained encoder on all the unlabelled training data (measured: no gain over finetune on "
        "Fashion-MNIST, so no longer a default); setfit: SetFit's contrastive fine-tuning; text2text (label words "
        "written by the decoder) runs on encoder-decoder models (t5; its recipe adds it); any protocol "
        "registered with sslab.evaluate.register_protocol (checked against the registry before a run starts)")
    foundation_protocols: list[str] | None = Field(None, description="the protocols run on a study's foundation "
                                                   "model and its adapted copy (None: `protocols`); the text recipes "
                                                   "name knn, linear, setfit (measured: setfit 76.8 +- 0.9 against "
                                                   "fine-tuning 72.9 +- 2.0 on SST-2 at 1%, in less time)")
    baselines: list[str] = Field(
        ["scratch", "scratch+aug", "raw"], description="raw: the data kind's no-learning baseline (logistic regression "
        "on raw pixels for images, on TF-IDF bag-of-words for text; 'pixels' and 'tfidf' name it too)")
    seeds: int = Field(5, ge=1, description="label subsets / head initialisations per fraction")
    finetune_seeds_large: int = Field(3, ge=1, description="seeds for fine-tuning at fractions >= 10% (costly)")
    val_items: int = Field(2000, ge=0, description="training items held out of every labelled subset (at most a "
                           "tenth of them, stratified, the same for every fraction and seed): fine-tuning stops on "
                           "their accuracy and is marked converged or not by it; 0 = none (fixed budgets)")
    knn_k: int = Field(20, gt=0)
    knn_temperature: float = Field(0.07, gt=0)
    linear_epochs: int = Field(100, gt=0)
    linear_steps: int = Field(1500, gt=0, description="cap on linear-probe steps (epochs shrink for big label sets)")
    linear_cv: bool = Field(False, description="linear probe by scikit-learn logistic regression with its L2 strength "
                            "chosen by 3-fold cross-validation on the labelled subset (no per-epoch curve)")
    finetune_until: Literal["plateau", "budget"] = Field("plateau", description="plateau: a supervised run trains "
                                                         "at a constant rate after warm-up until validation accuracy "
                                                         "stops rising (finetune_patience checks without a gain above "
                                                         "finetune_min_delta), divides it by 10, stops at the next "
                                                         "such plateau (or cools down: finetune_cooldown) and keeps "
                                                         "its best weights; one that reaches the image/epoch cap "
                                                         "first is marked not converged. budget: a one-cycle "
                                                         "schedule over the cap")
    finetune_epochs: int = Field(1000, gt=0, description="most epochs of a fine-tune run (a safety cap: a handful of "
                                 "labels makes a batch an epoch)")
    finetune_images: int = Field(2_000_000, gt=0, description="most images seen per fine-tune run")
    finetune_min_steps: int = Field(200, gt=0, description="least optimiser steps per fine-tune run")
    check_images: int = Field(5000, gt=0, description="images trained between validation checks (at least an "
                              "epoch; at most a twentieth of the cap)")
    finetune_patience: int = Field(2, ge=1, description="validation checks without a gain above finetune_min_delta "
                                   "over the best before a plateau is declared (after finetune_min_steps)")
    finetune_min_delta: float = Field(0.0, ge=0, description="a gain in validation accuracy must exceed this to count "
                                      "as still rising (the best weights are kept on any gain)")
    finetune_cooldown: float = Field(0.0, ge=0, description="> 0: warm-up, stable, decay (WSD): at the first plateau "
                                     "the rate decays linearly to 0 over this fraction of the images trained so far "
                                     "(whole checks, at least one) and the run stops. Measured (docs/results.md): "
                                     "0.25 with check_images=1280, finetune_min_delta=0.005 and finetune_min_steps=1 "
                                     "needs a third of the images at 1% labels without augmentation, and cuts an "
                                     "augmented run short")
    finetune_lr_drops: int = Field(1, ge=0, description="times the rate is divided by 10 at a plateau before the "
                                   "next one stops the run (finetune_cooldown=0)")
    curve_points: int = Field(10, gt=1, description="points on each train/test curve")
    finetune_lr: float = Field(1e-3, gt=0)
    layer_decay: float = Field(0.75, gt=0, le=1, description="fine-tuning a pretrained Vision Transformer (not the "
                               "scratch baselines): each block learns at this times the rate of the block above it "
                               "(MAE's layer-wise decay); 1 = off")
    selftrain_images: int = Field(60_000, gt=0, description="images the self-training student sees")
    setfit_iterations: int = Field(20, gt=0, description="setfit: pairs per labelled item and per epoch, halves "
                                   "positive (same class) and negative (SetFit's num_iterations; 20 is its default)")
    setfit_batch: int = Field(16, gt=1, description="setfit: pairs per step (SetFit's default)")
    setfit_lr: float = Field(5e-5, gt=0, description="setfit: AdamW's peak rate for the encoder (SetFit's default is "
                             "2e-5; measured on SST-2 with MiniLM and setfit_pseudo, 3 seeds, 2026-12-06: 1% 77.6 "
                             "-> 78.1, 8 per class 69.8 either way)")
    setfit_epochs: int = Field(1, gt=0, description="setfit: passes over the pairs (SetFit's default: one)")
    setfit_max_steps: int = Field(250, ge=0, description="setfit: most optimiser steps of a run, 0 = no cap "
                                  "(SetFit's max_steps; without it 100% of SST-2 is 20,000 steps, about 4 h on 2 "
                                  "cores, where 1% is 195 steps)")
    setfit_pseudo: int = Field(1000, ge=0, description="setfit: unlabelled items per class that the head also "
                                "learns from, labelled by the head fitted on the labelled items (its most confident "
                                "ones of each class, as many of each; self-training in the tuned embedding space); "
                                "0 = off (measured on SST-2 with MiniLM, 3 seeds, 2026-12-06: at 8 per class 66.4 "
                                "-> 69.8, at 1% 76.8 -> 77.6)")
    setfit_templates: int = Field(8, ge=0, description="setfit: copies of SetFit's templated example of each class "
                                  "(\"This sentence is <class>\", get_templated_dataset) that join the labelled "
                                  "items, for text whose class names are words and classify the labelled items about "
                                  "as well as the labels do (evaluate.protocols.names_informative); 0 = off "
                                  "(measured on SST-2 with MiniLM, 3 seeds, 2026-12-06: 8 per class 69.7 -> 74.6)")
    setfit_pool: int = Field(3000, gt=0, description="setfit: most unlabelled items embedded for setfit_pseudo")
    fixmatch_ratio: int = Field(3, gt=0, description="fixmatch: unlabelled items per labelled item in a step "
                                "(FixMatch's mu is 7; 3 measured for CPU budgets: a step costs 1 + 2 mu views)")
    fixmatch_threshold: float = Field(0.8, gt=0, le=1, description="fixmatch: confidence above which the weak view's "
                                      "prediction is a pseudo-label (FixMatch's tau is 0.95 over a million steps; "
                                      "measured 2026-12-06 within the plateau rule's few hundred: on digits at 3 "
                                      "labels per class 0.95 passed 1% of the items and tested 74.1%, 0.8 passed 40% "
                                      "and tested 88.9%)")
    fixmatch_adaptive: bool = Field(False, description="fixmatch: FreeMatch's self-adaptive class thresholds instead of "
                                    "the fixed fixmatch_threshold (measured on digits at 3 per class: 81.9%)")
    fixmatch_weight: float = Field(1.0, ge=0, description="fixmatch: weight of the unlabelled loss (lambda_u)")
    fixmatch_ema: float = Field(0.99, ge=0, lt=1, description="fixmatch: decay of the weight average that is "
                                "validated and kept (0: none; warmed up as min(decay, (1+t)/(10+t)); FixMatch's "
                                "0.999 is for runs of a million steps)")
    selftrain_temperature: float = Field(1.0, gt=0, description="temperature of the teacher's soft labels")
    finetune_aug: bool = Field(False, description="augment while fine-tuning the SSL encoder (measured: hurts at 1%)")
    batch_size: int = Field(128, gt=1)
    curve_test_images: int = Field(1000, gt=0, description="test images used for per-epoch curves")
    curve_seeds: int = Field(1, ge=0, description="label-subset seeds whose supervised runs record train and test "
                             "accuracy at every check (the report draws seed 0's curves); the others check "
                             "validation accuracy only (with finetune_until=budget every run records its curve)")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v):
        if not v or any(not (0 < f <= 1 or per_class(f)) for f in v):
            raise ValueError("label fractions must be in (0, 1], or whole counts per class >= 2 (8 or 8/class)")
        return sorted(set(v), key=label_order)


class StudyConfig(_Strict):
    data: str = "fashion-mnist"
    corpus: list[str] = Field(default_factory=list, description="extra unlabelled files to pretrain on (text)")
    text_column: str | None = Field(None, description="text data: the column of a .csv/.tsv/.txt/.jsonl file that "
                                    "holds the text (a header name or a number from 1); None: a known name, else "
                                    "the column of the longest free text")
    label_column: str | None = Field(None, description="text data: the column that holds the class labels (a header "
                                     "name or a number from 1); None: a known name, else the column of few distinct "
                                     "short values")
    pretrain_data: str | None = Field(None, description="pretrain on this data set (labels unused; an unlabelled "
                                      "image folder, another named set, a text corpus) instead of the task's "
                                      "training split, then transfer to `data`; images of `data` are resized and "
                                      "converted to the pretraining images' side and channels")
    foundation: str | None = Field("auto", description="a pretrained model to compare (CLI --from): a local Hugging "
                                   "Face text model folder or a Hub id (organisation/name, downloaded once), "
                                   "torchvision:<arch>=<weights file> / timm:<model>=<weights file> for images, or an "
                                   "earlier sslab run; auto: a text study's local sentence encoder when one is "
                                   "installed (setup.sh installs all-MiniLM-L6-v2), none for images; none: no "
                                   "foundation model")
    adapt: bool = Field(True, description="with a foundation model: also continue pretraining it on the task's "
                        "unlabelled training data (domain-adaptive pretraining) for the same budget, with the study's "
                        "method (images) or the masked / causal / span method of its architecture (text)")
    adapt_lr: float | None = Field(None, gt=0, description="continued pretraining's learning rate (None: 1e-4 for "
                                   "a text model, as domain-adaptive pretraining of RoBERTa used; a tenth of "
                                   "pretrain.lr for images)")
    probe_data: str | None = Field(None, description="image-text studies: a labelled image set for zero-shot "
                                   "classification and the image tower's probes (the clip recipe: cifar10)")
    prompts: list[str] = Field(["a photo of a {}."], description="zero-shot prompt templates ({} = the class "
                               "name), averaged")

    @field_validator("prompts")
    @classmethod
    def _one_slot(cls, v: list[str]) -> list[str]:
        if not v or any(p.count("{}") != 1 for p in v):
            raise ValueError("each prompt must hold one {} where the class name goes")
        return v
    time_limit: float | None = Field(900.0, gt=0, description="seconds the whole study may take (CLI --time 15m; "
                                     "None / 'none': no limit, every run the settings name). A plan made before "
                                     "any training gives pretraining at most 20% of it (never more than "
                                     "pretrain.budget) and picks the label subsets that fit, dropping seeds "
                                     "before fractions and 100% before 10% and 1%")

    @field_validator("time_limit", mode="before")
    @classmethod
    def _limit(cls, v):
        return None if isinstance(v, str) and v.strip().lower() in ("none", "off", "null", "") else parse_duration(v)

    pretrain_seeds: int = Field(1, ge=1, description="pretraining runs (seeds pretrain.seed, +1, ...), each "
                                "evaluated with every protocol; the ssl rows' spread is then over pretraining runs and "
                                "label subsets together (the baselines do not depend on pretraining: run once)")
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


M = TypeVar("M", bound=BaseModel)


def _set(d: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise SslabError(f"override {dotted!r}: {p!r} is not a section")
    d[last] = value


def recipe_path(path: str | Path) -> Path:
    """A recipe file: `path` itself, or the recipe of that name in sslab/recipes when no such file exists."""
    p = Path(path)
    return RECIPES / f"{path}.yaml" if not p.exists() and (RECIPES / f"{path}.yaml").exists() else p


def load_config(cls: type[M], path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> M:
    """Build `cls` from (in order) `base`, a YAML recipe file (or a name in sslab/recipes) and `key=value`
    overrides whose values are parsed as YAML (`pretrain.lr=1e-3`, `eval.fractions=[0.01,0.1]`)."""
    data: dict = dict(base or {})
    if path is not None:
        p = recipe_path(path)
        if not p.is_file():
            raise SslabError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise SslabError(f"invalid YAML in {p}: {str(e).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise SslabError(f"config file {p} must hold a mapping of settings")
        section = {PretrainConfig: "pretrain", EvalConfig: "eval"}.get(cls)
        if section and isinstance(loaded.get(section), dict):  # a study recipe used for one stage
            loaded = loaded[section]
        data = _merge(data, loaded)
    for item in overrides or []:
        if "=" not in item:
            raise SslabError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        _set(data, key.strip(), value)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            raise SslabError(f"unknown setting {where!r}") from None
        raise SslabError(f"invalid setting {where}: {err['msg']}") from None


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
