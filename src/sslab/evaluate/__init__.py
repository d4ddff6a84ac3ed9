"""The transfer harness: every registered protocol at every label fraction and seed, for the pretrained encoder
and the baselines, on any data kind. Protocols live in a registry (`PROTOCOLS`); what differs between data kinds
(how a labelled split is fed, the supervised augmentation, the no-learning baseline) lives in one adapter module
per kind (`evaluate.image`, `evaluate.text`). Result rows are keyed by metric (`metric`, `test_acc`, `train_acc`)."""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from sslab.config import EvalConfig, label_text, per_class
from sslab.dist import default_device
from sslab.data import label_subset, validation_split
from sslab.errors import SslabError
from sslab.evaluate.protocols import (extract_features, finetune, fixmatch, fixmatch_cost, knn_accuracy,
                                      linear_probe, self_train, setfit, setfit_steps)
from sslab.health import embedding_health


@dataclass(frozen=True)
class Protocol:
    """`frozen`: fn(train_f, train_y, test_f, test_y, cfg, seed, n_classes) on frozen features; else
    fn(encoder, train, idx, test, cfg, seed, n_classes, augment, device, val=...), which trains the encoder (`val`:
    the validation items of `train` it may stop on, or None).
    `seeded`: the result depends on the seed beyond the label subset (kNN does not: with all labels it runs once).
    `applies(encoder)`: whether the protocol can run on this encoder (text-to-text needs an encoder-decoder).
    `teacher`: the protocol whose trained model (its result's "model") this one is given as `teacher=`, for the same
    labels and seed. `unlabelled`: it uses the training items without labels too, so it is skipped at 100%.
    `cost(n_labels, cfg) -> (steps, items per step, validation checks)`: what a trained run costs, for a study's plan
    (None: the plateau rule's estimate, `fit_classifier`). `views`: it takes the data kind's weak and strong views
    (`consistency_views`) as `views=`."""
    name: str
    fn: Callable
    frozen: bool
    metric: str = "accuracy"
    seeded: bool = True
    applies: Callable = lambda encoder: True
    teacher: str | None = None
    unlabelled: bool = False
    cost: Callable | None = None
    views: bool = False


PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(name: str, fn: Callable, frozen: bool, metric: str = "accuracy", seeded: bool = True,
                      applies: Callable | None = None, teacher: str | None = None, unlabelled: bool = False,
                      cost: Callable | None = None, views: bool = False) -> None:
    PROTOCOLS[name] = Protocol(name, fn, frozen, metric, seeded, applies or (lambda encoder: True), teacher,
                               unlabelled, cost, views)


# The baselines a config may name: the same network trained from random weights (with the supervised augmentation for
# scratch+aug; by consistency training on the unlabelled items for scratch+fixmatch, whose rows are init "scratch",
# protocol "fixmatch"), and the data kind's no-learning baseline (raw pixels / TF-IDF; "raw" names either).
BASELINES = ("scratch", "scratch+aug", "scratch+fixmatch", "raw", "pixels", "tfidf")


def scratch_runs(baselines, fraction: float) -> list[tuple[str, str, bool]]:
    """(init, protocol, augmented) of the baselines trained from random weights on one label subset."""
    out = [(base, "finetune", base.endswith("+aug")) for base in ("scratch", "scratch+aug") if base in baselines]
    if "scratch+fixmatch" in baselines and fraction != 1.0:
        out.append(("scratch", "fixmatch", True))
    return out


def check_names(cfg: EvalConfig, where: str = "") -> None:
    """The one-line SslabError for a protocol or baseline that is not registered (`where`: the settings' prefix,
    "eval." in a study's config), raised before anything runs."""
    for field, known in (("protocols", sorted(PROTOCOLS)), ("foundation_protocols", sorted(PROTOCOLS)),
                         ("baselines", BASELINES)):
        for name in getattr(cfg, field) or ():
            if name not in known:
                raise SslabError(f"invalid setting {where}{field}: unknown name {name!r}; choose from "
                                 f"{', '.join(known)}")


def foundation_protocols(cfg: EvalConfig) -> list[str]:
    """The protocols a study runs on its foundation model (and that model adapted): `cfg.foundation_protocols`, or
    the study's protocols when that is None."""
    return cfg.protocols if cfg.foundation_protocols is None else cfg.foundation_protocols


def _knn(train_f, train_y, test_f, test_y, cfg, seed, n_classes):
    return {"train_acc": None, "curve": None,
            "test_acc": knn_accuracy(train_f, train_y, test_f, test_y, cfg.knn_k, cfg.knn_temperature)}


register_protocol("knn", _knn, frozen=True, seeded=False)
register_protocol("linear", linear_probe, frozen=True)
register_protocol("finetune", finetune, frozen=False)
register_protocol("selftrain", self_train, frozen=False, teacher="finetune", unlabelled=True)
# SetFit: a fixed budget of pair steps, two encodings of cfg.setfit_batch items each, no validation checks
register_protocol("setfit", setfit, frozen=False,
                  cost=lambda n, cfg: (setfit_steps(n, cfg), 2 * cfg.setfit_batch, 0))
# consistency training on the unlabelled items, the data kind's weak and strong views (not at 100% labels)
register_protocol("fixmatch", fixmatch, frozen=False, unlabelled=True, cost=fixmatch_cost, views=True,
                  teacher="finetune")


def _text_to_text(*args, **kw):
    from sslab.evaluate.text import text_to_text

    return text_to_text(*args, **kw)


# text-to-text needs an encoder-decoder: an encoder that carries its whole model (nets.text.Seq2SeqEncoder)
register_protocol("text2text", _text_to_text, frozen=False,
                  applies=lambda encoder: getattr(getattr(encoder, "model", None), "get_encoder", None) is not None)


# Evaluations of a whole run that need no labels (word vectors' similarity and analogy sets, ...): a method names
# the ones that apply in its `run_evaluations`; each fn(run_dir, info, root, splits) returns {"title": ...,
# "lines": [...], "values": {...}} for the terminal and the report. `splits`: the run's data set already loaded (a
# study's), else None and the fn loads `info["data"]` itself.
RUN_EVALUATIONS: dict[str, Callable] = {}


def register_run_evaluation(name: str, fn: Callable) -> None:
    RUN_EVALUATIONS[name] = fn


def _word_vectors(run_dir, info: dict, root=None, splits=None) -> dict:
    from sslab.evaluate.wordvec import intrinsic, intrinsic_lines, run_word_table

    values = intrinsic(run_word_table(run_dir), root)
    return {"title": "Word vectors (intrinsic)", "lines": intrinsic_lines(values), "values": values}


register_run_evaluation("word-vectors", _word_vectors)


def _retrieval(run_dir, info: dict, root=None, splits=None) -> dict:
    from sslab.evaluate.pairs import retrieval_evaluation

    return retrieval_evaluation(run_dir, info, root, splits=splits)


register_run_evaluation("retrieval", _retrieval)


def _reconstruction(run_dir, info: dict, root=None, splits=None) -> dict:
    from sslab.evaluate.image import reconstruction_evaluation

    return reconstruction_evaluation(run_dir, info, root, splits=splits)


register_run_evaluation("reconstruction", _reconstruction)


def _energy(run_dir, info: dict, root=None, splits=None) -> dict:
    from sslab.evaluate.image import energy_evaluation

    return energy_evaluation(run_dir, info, root, splits=splits)


register_run_evaluation("energy", _energy)


def run_evaluations(run_dir, info: dict, root=None, splits=None) -> dict:
    """{name: result} of every run-level evaluation the run's method names (`splits`: the run's data set, when the
    caller has it loaded already)."""
    from sslab.methods import METHODS

    names = getattr(METHODS.get(info.get("method")), "run_evaluations", ())
    out = {}
    for name in names:
        try:
            out[name] = RUN_EVALUATIONS[name](run_dir, info, root, splits=splits)
        except SslabError as err:  # e.g. the run's data set is gone: the rest of the evaluation stands
            out[name] = {"title": f"{name} (not measured)", "lines": [f"not measured: {err}"], "values": {}}
    return out


def kind_adapter(kind: str):
    """The harness's adapter module for a data kind (`sslab.evaluate.<kind>`)."""
    try:
        return importlib.import_module(f"sslab.evaluate.{kind}")
    except ModuleNotFoundError:
        raise SslabError(f"no evaluation harness for {kind} data") from None


def check_labelled(splits) -> None:
    if splits.train.y is None or splits.test is None:
        hint = "; `sslab pretrain --data` trains on it, and a study's `--pretrain-data` pretrains on it"
        raise SslabError(f"{splits.train.name}: evaluation needs labelled data (class sub-folders), found unlabelled "
                         f"images{hint}" if splits.train.kind == "image" else
                         f"{splits.train.name}: evaluation needs labelled data, found an unlabelled corpus{hint}")
    if len(splits.test) == 0:
        raise SslabError(f"{splits.train.name}: too few {splits.train.unit} per class to hold out a test split")
    if len(splits.train.classes) < 2:
        raise SslabError(f"{splits.train.name}: evaluation needs at least 2 classes, found "
                         f"{len(splits.train.classes)}" + "".join(f" ({c!r})" for c in splits.train.classes))
    n = len(splits.train.classes)
    noun = "image" if splits.train.kind == "image" else "example"
    n_train, n_test = np.bincount(splits.train.y, minlength=n), np.bincount(splits.test.y, minlength=n)
    for c, name in enumerate(splits.train.classes):
        if n_train[c] == 0:
            raise SslabError(f"{splits.train.name}: class {name!r} has no training {noun}, so no label fraction can "
                             "give it a labelled example")
        if n_test[c] == 0:
            raise SslabError(f"{splits.train.name}: class {name!r} has no test {noun} ({n_train[c]} in training); "
                             f"evaluation needs one per class in the test split (2 {noun}s per class when sslab splits)")


class Schedule:
    """Which label subsets (fraction, seed) `evaluate_encoder` measures, in what order, and which trained runs it
    runs on each: by default what `cfg` names (every fraction x `seeds`, trained runs on `finetune_seeds_large`
    subsets at 10% and above), fraction by fraction. A study's plan (sslab.studies.plan.Plan) is another schedule: it picks
    the runs that fit a time limit, caps each run's images and hears how long each took."""

    def __init__(self, cfg: EvalConfig):
        self.cfg, self.done, self.total = cfg, 0, 0

    def subsets(self, name: str) -> list[tuple[float, int]]:
        out = [(f, s) for f in self.cfg.fractions for s in range(self.cfg.seeds)]
        self.done, self.total = 0, len(out)
        return out

    def trains(self, name: str, init: str, protocol: str, fraction: float, seed: int) -> bool:
        return not (seed >= self.cfg.finetune_seeds_large and fraction >= 0.1 and not per_class(fraction))

    def cap(self, name: str, fraction: float, protocol: str = "finetune") -> int | None:
        """The most labelled images a trained `protocol` run at `fraction` may see (None: `cfg.finetune_images`)."""
        return None

    def ran(self, name: str, init: str, protocol: str, fraction: float, seed: int, res: dict, seconds: float) -> None:
        """A trained run finished in `seconds`."""

    def frozen_ran(self, name: str, fraction: float, seed: int, seconds: float) -> None:
        """The frozen-feature runs of a label subset took `seconds`."""

    def subset_done(self, name: str, fraction: float, seed: int) -> float:
        """A label subset is done: the share of the schedule's work done so far."""
        self.done += 1
        return self.share_done()

    def share_done(self) -> float:
        return self.done / max(1, self.total)


class SeedList(Schedule):
    """Only the label subsets `seeds` of every fraction, with every trained run on each."""

    def __init__(self, cfg: EvalConfig, seeds: list[int]):
        super().__init__(cfg)
        self.seeds = list(seeds)

    def subsets(self, name: str) -> list[tuple[float, int]]:
        out = [(f, s) for f in self.cfg.fractions for s in self.seeds]
        self.done, self.total = 0, len(out)
        return out

    def trains(self, name: str, init: str, protocol: str, fraction: float, seed: int) -> bool:
        return True


def evaluate_encoder(encoder, info: dict, splits, cfg: EvalConfig, log=print, fresh: Callable | None = None,
                     progress=None, name: str = "ssl", schedule: Schedule | None = None, keeper=None) -> dict:
    """Every protocol x fraction x seed for the pretrained `encoder` (None: baselines only) and the baselines named
    in `cfg.baselines`; `fresh(seed)` builds a randomly initialised encoder of the same architecture (the scratch
    baselines). `name`: the encoder's rows' init ("ssl"; "foundation" for a pretrained model). `schedule`: which
    label subsets and trained runs, in what order (default: all that `cfg` names). `keeper`: an
    `evaluate.saved.ModelKeeper` that the trained models of the encoder's rows are offered to, which keeps the
    best seed's of each protocol and fraction (`sslab evaluate --save-model`). Returns {"runs": [...],
    "health": {...}, "val_items": how many training items were held out for validation}."""
    check_names(cfg)
    check_labelled(splits)
    schedule = schedule or Schedule(cfg)
    kind = kind_adapter(info.get("kind", "image"))
    device = default_device()
    tr, te = kind.labelled(splits.train, info), kind.labelled(splits.test, info)
    n_classes = len(splits.train.classes)
    runs: list[dict] = []
    health = None
    feats = {}
    if encoder is not None:
        t = time.time()
        feats[name] = (extract_features(encoder, tr, device), extract_features(encoder, te, device))
        health = embedding_health(feats[name][1], full=True)
        log(f"features extracted in {time.time() - t:.1f}s; effective rank {health['effective_rank']:.1f} of {health['dim']}")
    if {"raw", "pixels", "tfidf"} & set(cfg.baselines):  # the kind's no-learning baseline (raw pixels / TF-IDF)
        feats[kind.RAW_BASELINE] = kind.raw_features(tr, te)
    augment = kind.augmenter(info, device)
    frozen = [p for p in cfg.protocols if PROTOCOLS[p].frozen]
    trained = [p for p in cfg.protocols if not PROTOCOLS[p].frozen]
    if encoder is not None:
        for p in cfg.protocols:
            if not PROTOCOLS[p].applies(encoder) and p in trained:
                log(f"{p}: not for this {name} model (text2text needs an encoder-decoder such as t5), skipped")
    # a network trained from random init learns at one rate in every layer: layer-wise decay is for fine-tuning
    # pretrained layers (on vit-mini at 1% of Fashion-MNIST scratch reached 53.9 +- 0.5 with decay 0.75)
    scratch_cfg = cfg.model_copy(update={"layer_decay": 1.0})
    # a fixed validation set out of every labelled subset: supervised runs stop on it (cfg.finetune_until)
    val, pool = validation_split(splits.train.y, cfg.val_items)
    if len(val):
        log(f"validation: {len(val)} training {splits.train.unit} held out of every labelled subset")

    def record(init, protocol, fraction, seed, n_labels, res):
        metric = PROTOCOLS[protocol].metric if protocol in PROTOCOLS else "accuracy"  # logreg: the raw baseline's
        runs.append({"init": init, "protocol": protocol, "fraction": fraction, "seed": seed, "n_labels": n_labels,
                     "metric": metric, **res})
        train = "" if res["train_acc"] is None else f"  train {res['train_acc']:.2%}"
        if res.get("val_acc") is not None:
            train += f"  val {res['val_acc']:.2%}  {res['epochs']:g} epochs"
        if res.get("converged") is False:
            train += "  (not converged: stopped at the cap)"
        log(f"  {init:12s} {protocol:9s} {label_text(fraction):>7s} seed {seed}: test {res['test_acc']:.2%}{train}")

    short = set()  # counts per class that some class cannot fill, said once each
    for fraction, seed in schedule.subsets(name):
        idx = pool[label_subset(splits.train.y[pool], fraction, seed, num_classes=n_classes)]
        ytr = splits.train.y[idx]
        few = np.flatnonzero(np.bincount(ytr, minlength=n_classes) < fraction) if per_class(fraction) else []
        if len(few) and fraction not in short:
            short.add(fraction)
            names = [str(splits.train.classes[c]) for c in few]
            log(f"{label_text(fraction)}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''} "
                f"{'has' if len(names) == 1 else 'have'} fewer labelled items than that (all of them are used)")
        t = time.time()
        for init, f in feats.items():
            if init != name:  # the raw baseline: logistic regression
                record(init, "logreg", fraction, seed, len(idx),
                       kind.raw_probe(f, idx, ytr, splits.test.y, cfg, seed, n_classes))
                continue
            ftr, fte = f
            for protocol in frozen:
                if fraction == 1.0 and seed > 0 and not PROTOCOLS[protocol].seeded:
                    continue  # the same labels and no randomness: one run, not copies of it
                record(init, protocol, fraction, seed, len(idx),
                       PROTOCOLS[protocol].fn(ftr[idx], ytr, fte, splits.test.y, cfg, seed, n_classes))
        schedule.frozen_ran(name, fraction, seed, time.time() - t)
        inits = []
        if encoder is not None:
            inits += [(name, protocol, cfg.finetune_aug or PROTOCOLS[protocol].unlabelled)
                      for protocol in trained if PROTOCOLS[protocol].applies(encoder)
                      and not (PROTOCOLS[protocol].unlabelled and fraction == 1.0)]
        inits += scratch_runs(cfg.baselines, fraction) if fresh is not None else []
        inits = [i for i in inits if schedule.trains(name, i[0], i[1], fraction, seed)]
        models = {}  # (init, protocol) -> the trained model a later protocol takes as its teacher
        for i, (init, protocol, aug) in enumerate(inits):
            scratch = init in ("scratch", "scratch+aug")
            if scratch:
                torch.manual_seed(seed)
            net = fresh(seed) if scratch else encoder
            teacher = PROTOCOLS[protocol].teacher
            kw = {"teacher": models.get((init, teacher))} if teacher else {}
            kw["val"] = val if len(val) else None
            if PROTOCOLS[protocol].views:
                kw["views"] = kind.consistency_views(info, device)
            run_cfg = scratch_cfg if scratch else cfg
            cap = schedule.cap(name, fraction, protocol)
            if cap is not None:
                run_cfg = run_cfg.model_copy(update={"finetune_images": cap})
            t = time.time()
            res = PROTOCOLS[protocol].fn(net, tr, idx, te, run_cfg, seed, n_classes, augment if aug else None,
                                         device, **kw)
            schedule.ran(name, init, protocol, fraction, seed, res, time.time() - t)
            model = res.pop("model", None)
            if any(PROTOCOLS[p].teacher == protocol for _, p, _ in inits[i + 1:]):  # kept when a later run needs it
                models[(init, protocol)] = model
            if keeper is not None and init == name:  # written now when it is the best so far: not held
                keeper.offer(protocol, fraction, seed, len(idx), res, model, splits.train.classes, splits.train.name)
            record(init, protocol, fraction, seed, len(idx), res)
            if progress is not None and i + 1 < len(inits):  # a ViT's fine-tune run takes minutes on a CPU
                progress.update(schedule.share_done(), f"{label_text(fraction)} labels, seed {seed}: {init} {protocol} done")
        done = schedule.subset_done(name, fraction, seed)
        if progress is not None:
            progress.update(done, f"{label_text(fraction)} labels, seed {seed}")
    return {"runs": runs, "health": health, "val_items": len(val)}


__all__ = ["BASELINES", "PROTOCOLS", "Protocol", "check_names", "register_protocol", "RUN_EVALUATIONS", "register_run_evaluation", "run_evaluations", "evaluate_encoder", "Schedule", "SeedList", "check_labelled", "extract_features",
           "knn_accuracy", "linear_probe", "finetune", "kind_adapter"]
