"""A study's plan: what fits in its time limit, decided before any training and kept to while it runs.

The planner times a few fine-tuning steps of each network the study will train (`step_costs`, a few seconds
each), estimates every run from that and from how many images a run takes to reach its validation plateau, and
chooses label subsets greedily in the order of the study's questions: seed 0 of 1%, 10% and 100% labels, then
seed 1 of each, and so on; the runs that start from a subset's fine-tuned model (self-training, fixmatch) of seed
s after the core runs of seed s + 1 (of the fewest labels' seed 0: right after the core runs of seed 0); the
frozen-only subsets last. What does not fit is skipped
(so seeds go before fractions, and 100% -- the costliest -- before 10% and 1%) and listed with the command that
runs it. While the study runs, the plan is its `evaluate.Schedule`: it hears how long each run took, scales the
estimates of the runs left by what it measured, skips a run that would end after 97% of the limit, takes up
skipped subsets when the runs were faster than estimated, and gives the progress bar its share of the planned
work, so the ETA follows the plan.
"""
from __future__ import annotations

import math
import shlex
import time

import numpy as np

from sslab.config import EvalConfig, StudyConfig, label_text, per_class
from sslab.data import label_subset
from sslab.evaluate import PROTOCOLS, Schedule, scratch_runs
from sslab.evaluate.protocols import plateau_steps, run_estimate
from sslab.studies.summary import plan_lines, seeds_text

NO_ROOM = "does not fit the time limit"
CAP_FACTOR = 6.0  # a run may train this many times its estimated images before it is stopped (and marked †): at 3,
# scratch+aug at 10% of Fashion-MNIST stopped at 24 epochs before its plateau (2026-12-06)
PRETRAIN_SHARE = 0.2  # of the time limit, for pretraining (at most the recipe's budget): at 0.3 the default study's
# fixmatch row at 1% cost the 10% rows their second seed (planned from the calibration of 2026-12-06)
END_MARGIN = 0.95  # the plan fills this share of the limit; the rest absorbs what estimates miss
FROZEN_SECONDS = 1.0  # a kNN / linear-probe / logistic-regression run on frozen features (measured: 0.1-3 s)
REPORT_SECONDS = 10.0  # summary, plots and report (measured: 3-8 s)
DEADLINE_SHARE = 0.97  # the last trained run starts only if it is expected to end by this share of the limit (the
# default study at 15m ended 36-39 s past the limit with the deadline at the limit itself, 2026-12-06)
STARTUP_SECONDS = 8.0  # the command's imports before the study's clock starts, and what a run overruns its check by


class Plan(Schedule):
    """The runs of one study that fit `limit` seconds (None: every run the settings name). `encoders`: name ->
    {"costs": step_costs(...), "baselines": whether the scratch baselines and the raw baseline run beside it,
    "protocols": the trained protocols that apply to it}; `pool_y`: the labels of the training items that label
    subsets are drawn from (validation items held out); `started`: when the study began (time.time())."""

    def __init__(self, cfg: StudyConfig, encoders: dict[str, dict], pool_y: np.ndarray, n_classes: int,
                 n_train: int, n_test: int, limit: float | None, started: float, pretrain_seconds: float | None,
                 pretrainings: int = 1, run_dir: str = "runs/<study>", command: str = ""):
        super().__init__(cfg.eval)
        self._args = (cfg, pool_y, n_classes, n_train, n_test, limit, started, run_dir, command)
        ev: EvalConfig = cfg.eval
        self.ev, self.limit, self.started, self.run_dir, self.study_command = ev, limit, started, run_dir, command
        self.pretrain_seconds, self.pretrainings = pretrain_seconds, pretrainings
        self.encoders = encoders
        self.plateau = ev.finetune_until == "plateau" and ev.val_items > 0
        self.n_labels = {f: len(label_subset(pool_y, f, 0, num_classes=n_classes)) for f in ev.fractions}
        self.n_classes = n_classes
        self.n_train, self.n_test = n_train, n_test
        self.speed = 1.0  # measured seconds / estimated seconds of the trained runs so far
        self.measured = [0.0, 0.0]  # (estimated, measured) seconds of finished trained runs
        self.skipped: list[dict] = []
        self.done_est = 0.0  # estimated seconds of the work done so far
        self.frozen_measured: dict[tuple, float] = {}  # (name, fraction) -> seconds of a subset's frozen runs
        self._choose(time.time() - started)

    # --- estimates -------------------------------------------------------------------------------------------
    def steps(self, fraction: float, protocol: str) -> tuple[int, int, int]:
        """(optimiser steps, batch size, validation checks) a trained run at `fraction` is expected to take, by
        `fit_classifier`'s rules."""
        ev, n = self.ev, self.n_labels[fraction]
        if PROTOCOLS[protocol].cost is not None:  # a protocol with its own budget (setfit)
            if protocol == "setfit":  # its templated examples train beside the labels (text classes named by
                n += ev.setfit_templates * self.n_classes  # words; counted for any kind, an upper bound)
            return PROTOCOLS[protocol].cost(n, ev)
        if PROTOCOLS[protocol].teacher is not None:  # the self-training student: its own image budget, every item
            n = max(n, self.n_train)
            ev = ev.model_copy(update={"finetune_images": ev.selftrain_images, "finetune_epochs": 1_000_000})
        return run_estimate(n, ev)

    def cap(self, name: str, fraction: float, protocol: str = "finetune") -> int | None:
        """The most labelled images a `protocol` run at `fraction` may train: CAP_FACTOR times its estimate, and no
        more than fit before the deadline at the speed measured so far (a run stopped by either is marked not
        converged)."""
        if not self.plateau or self.limit is None:
            return None
        steps, items, _ = self.steps(fraction, protocol)
        bs = plateau_steps(self.n_labels[fraction], self.ev)[0]  # labelled items per step
        c = self.encoders[name]["costs"]
        per_image = (c["step"] + items * c["train"]) / bs * self.speed
        affordable = max(0.0, self.deadline() - time.time()) / max(per_image, 1e-9)
        return int(max(bs, min(self.ev.finetune_images, CAP_FACTOR * steps * bs, affordable)))

    def run_seconds(self, name: str, protocol: str, fraction: float, seed: int = 0) -> float:
        """Estimated seconds of one trained run: its training steps, its validation checks and curve points, and
        the final accuracy on the test split and (up to 10,000 of) the labelled items."""
        ev, c = self.ev, self.encoders[name]["costs"]
        steps, bs, checks = self.steps(fraction, protocol)
        n = self.n_labels[fraction]
        curves = seed < ev.curve_seeds or not self.plateau
        per_check = ((ev.val_items if self.plateau else 0)
                     + curves * (min(self.n_test, ev.curve_test_images) + min(n, ev.curve_test_images)))
        forward = checks * per_check + self.n_test + min(n, 10_000)
        if PROTOCOLS[protocol].teacher is not None and PROTOCOLS[protocol].cost is None:
            forward += self.n_train  # the self-training teacher scores every training item
        if protocol == "setfit" and ev.setfit_pseudo:  # the head's pseudo-labels: unlabelled items embedded
            forward += min(ev.setfit_pool, self.n_train)
        return steps * (c["step"] + bs * c["train"]) + forward * c["eval"]

    def _run_cost(self, name: str, init: str, protocol: str, fraction: float, seed: int) -> float:
        """`run_seconds` of one (init, protocol) run, with its teacher's when no core run of the subset trains
        that (fixmatch alone trains its own fine-tuned model first)."""
        secs = self.run_seconds(name, protocol, fraction, seed)
        teacher = PROTOCOLS[protocol].teacher
        if teacher is not None and (init, teacher) not in self._trained(name, fraction, False):
            secs += self.run_seconds(name, teacher, fraction, seed)
        return secs

    def _trained(self, name: str, fraction: float, extra: bool) -> list[tuple[str, str]]:
        """(init, protocol) of the trained runs on one label subset: the core ones, or (`extra`) those that start
        from a core run's model (self-training's student, fixmatch)."""
        enc = self.encoders[name]
        out = [("self", p) for p in enc["protocols"] if (PROTOCOLS[p].teacher is not None) == extra
               and not (PROTOCOLS[p].unlabelled and fraction == 1.0)]
        if enc["baselines"]:
            out += [(init, p) for init, p, _ in scratch_runs(self.ev.baselines, fraction)
                    if (PROTOCOLS[p].teacher is not None) == extra]
        return out

    def _frozen_seconds(self, name: str, fraction: float | None = None) -> float:
        """The frozen-feature runs of one label subset: as measured on an earlier subset of `fraction`, else
        FROZEN_SECONDS a run."""
        if (name, fraction) in self.frozen_measured:
            return self.frozen_measured[(name, fraction)]
        ev = self.ev
        n = sum(1 for p in ev.protocols if PROTOCOLS[p].frozen)
        raw = self.encoders[name]["baselines"] and bool({"raw", "pixels", "tfidf"} & set(ev.baselines))
        return (n + raw) * FROZEN_SECONDS

    # --- choosing ----------------------------------------------------------------------------------------------
    def _choose(self, elapsed: float) -> None:
        ev = self.ev
        fracs = sorted(ev.fractions, key=lambda f: self.n_labels[f])  # fewest labels first
        small = lambda f: self.n_labels[f] < 0.1 * (self.n_train or 1) if per_class(f) else f < 0.1  # noqa: E731
        trained_seeds = {f: ev.seeds if small(f) else min(ev.seeds, ev.finetune_seeds_large) for f in fracs}
        tiers = [(f, s) for s in range(ev.seeds) for f in fracs if s < trained_seeds[f]]
        self.features = sum(self.features_seconds(n) for n in self.encoders)
        fixed = elapsed + (self.pretrain_seconds or 0.0) * self.pretrainings + self.features + REPORT_SECONDS
        room = math.inf if self.limit is None else END_MARGIN * self.limit - fixed
        self.fixed = fixed
        self.runs: dict[tuple, float] = {}  # (name, init, protocol, fraction, seed) -> estimated seconds
        self.subset_list: dict[str, list[tuple[float, int]]] = {n: [] for n in self.encoders}
        used = 0.0
        # the core runs seed by seed; the runs that start from a subset's fine-tuned model (self-training, fixmatch)
        # of seed s after the core runs of seed s + 1, so that the core rows have their spread first -- but those of
        # the first subset (fewest labels, seed 0) right after the core runs of seed 0, so that every row the study
        # names is measured at least once where it matters most (the default study's fixmatch row at 1%)
        first = tiers[0] if tiers else None
        order = {(f, s, extra): (0.5 if extra and (f, s) == first else s + 1.5 * extra, i)
                 for i, (f, s) in enumerate(tiers) for extra in (0, 1)}
        # an encoder's "rank" orders it among the others on one subset (the foundation, the study's best answer
        # where there is one, before own SSL), its "defer" moves its subsets that many seeds later (the adapted
        # model: after the next seed of the others, as an extra)
        rank = {n: e.get("rank", 1) for n, e in self.encoders.items()}
        defer = {n: e.get("defer", 0.0) for n, e in self.encoders.items()}
        candidates = sorted(((f, s, n, bool(extra)) for (f, s, extra) in order for n in self.encoders),
                            key=lambda c: (order[(c[0], c[1], int(c[3]))][0] + defer[c[2]],
                                           order[(c[0], c[1], int(c[3]))][1], rank[c[2]]))
        for f, s, name, extra in candidates:
            items = self._trained(name, f, extra)
            if extra and not items:
                continue
            cost = sum(self._run_cost(name, init, p, f, s) for init, p in items)
            if not extra:
                cost += self._frozen_seconds(name)
            if extra and (f, s) not in self.subset_list[name]:
                continue  # a student needs its subset's teacher
            what = {"name": name, "fraction": f, "seed": s, "runs": items, "seconds": cost, "extra": extra}
            if used + cost <= room:
                used += cost
                for init, p in items:
                    self.runs[(name, init, p, f, s)] = self._run_cost(name, init, p, f, s)
                if not extra:
                    self.subset_list[name].append((f, s))
            else:
                self.skipped.append({**what, "why": NO_ROOM})
        # subsets measured with frozen features only (beyond the trained seeds at >= 10%, or whose trained runs did
        # not fit): cheap, if they fit
        for s in range(ev.seeds):
            for f in fracs:
                for name in self.encoders:
                    if (f, s) in self.subset_list[name]:
                        continue
                    cost = self._frozen_seconds(name)
                    if used + cost <= room:
                        used += cost
                        self.subset_list[name].append((f, s))
                    else:
                        self.skipped.append({"name": name, "fraction": f, "seed": s, "runs": [], "seconds": cost,
                                             "extra": False, "why": NO_ROOM})
        for name in self.subset_list:  # seed-major: seed 0 of every fraction before any seed 1; frozen-only last
            trains = {(f, s) for (n, _, _, f, s) in self.runs if n == name}
            self.subset_list[name].sort(key=lambda fs: (fs not in trains, fs[1], self.n_labels[fs[0]]))
        self.queue = {name: list(v) for name, v in self.subset_list.items()}
        self.begun: dict[str, set] = {name: set() for name in self.subset_list}
        self.eval_estimate = used
        self.total_est = max(1e-9, used)

    def without(self, name: str, pretrain_seconds: float | None, pretrainings: int) -> "Plan":
        """The plan made again without encoder `name` and its pretraining (its networks as timed already)."""
        cfg, pool_y, n_classes, n_train, n_test, limit, started, run_dir, command = self._args
        encoders = {k: v for k, v in self.encoders.items() if k != name}
        return Plan(cfg, encoders, pool_y, n_classes, n_train, n_test, limit, started, pretrain_seconds,
                    pretrainings, run_dir, command)

    def has_runs(self, name: str) -> bool:
        """Whether the plan runs anything on encoder `name`'s features: frozen-feature probes or trained runs."""
        return bool(self.subset_list.get(name))

    def features_seconds(self, name: str) -> float:
        """Estimated seconds of extracting encoder `name`'s features of every training and test item."""
        return (self.n_train + self.n_test) * self.encoders[name]["costs"]["eval"]

    def shortest_limit(self) -> float:
        """The least time limit under which the plan would run something: its fixed costs (the time spent so far,
        pretraining, features, report) and the cheapest skipped subset, over the share of the limit it fills."""
        cheapest = min((item["seconds"] for item in self.skipped), default=0.0)
        return (self.fixed + cheapest) / END_MARGIN

    def has_trained(self, name: str) -> bool:
        """Whether the plan trains any run on encoder `name`'s features."""
        return any(k[0] == name for k in self.runs)

    def _top_up(self, name: str) -> None:
        """When encoder `name` has run its planned subsets and the runs so far were faster than estimated, the
        skipped subsets of `name` that now fit before the deadline (after the work still planned for the other
        encoders), in the plan's order, with their students when those fit too."""
        if self.limit is None:
            return
        # the features of the encoders still to come are extracted before their runs: not room for these (the SST-2
        # study at --time 4m took up own SSL's skipped subsets with the MiniLM's 51 s of features still to come,
        # and ended 11% past its limit, 2026-12-07)
        pending = sum(self.features_seconds(n) for n in self.encoders
                      if n != name and not self.begun.get(n) and self.has_runs(n))
        left = self.deadline() - time.time() - max(0.0, self.total_est - self.done_est) * self.speed - pending
        for item in [i for i in self.skipped if i["name"] == name and i["why"] == NO_ROOM]:
            fs = (item["fraction"], item["seed"])
            if fs in self.begun[name] or (item["extra"] and fs not in self.queue[name]):
                continue  # its subset has been measured already (a student: its teacher is not coming)
            need = item["seconds"] * self.speed
            if need > left:
                continue
            left -= need
            self.skipped.remove(item)
            self.total_est += item["seconds"]
            f, s = item["fraction"], item["seed"]
            for init, p in item["runs"]:
                self.runs[(name, init, p, f, s)] = self._run_cost(name, init, p, f, s)
            if (f, s) not in self.queue[name]:  # else a frozen-only subset still to come: it trains these too
                self.subset_list[name].append((f, s))
                self.queue[name].append((f, s))

    def bind(self, key: str) -> "Schedule":
        """The schedule of encoder `key`'s evaluation (`evaluate_encoder(..., schedule=plan.bind(key))`)."""
        return _Bound(self, key)

    # --- the Schedule the harness follows ----------------------------------------------------------------------
    def subsets(self, name: str):
        """The planned label subsets of `name`, then any skipped ones that the time saved has made room for."""
        while True:
            if not self.queue[name] or not any(k[0] == name and k[3:] == self.queue[name][0] for k in self.runs):
                self._top_up(name)  # the planned trained runs are done: room for skipped ones?
            if not self.queue[name]:
                return
            f, s = self.queue[name].pop(0)
            self.begun[name].add((f, s))
            need = self._frozen_seconds(name, f)
            if time.time() + need > self.deadline():  # not even its frozen-feature runs fit any more
                self.total_est -= need
                runs = [(init, p) for (n, init, p, ff, ss) in list(self.runs) if (n, ff, ss) == (name, f, s)]
                for init, p in runs:
                    self.total_est -= self.runs.pop((name, init, p, f, s))
                self.skipped.append({"name": name, "fraction": f, "seed": s, "runs": runs, "seconds": need,
                                     "why": "the runs before it took longer than planned", "extra": False})
                continue
            yield f, s

    def deadline(self) -> float:
        """When the last trained run must end: the limit less the time the summary and report take."""
        if self.limit is None:
            return math.inf
        return self.started + DEADLINE_SHARE * self.limit - REPORT_SECONDS - STARTUP_SECONDS

    def trains(self, name: str, init: str, protocol: str, fraction: float, seed: int) -> bool:
        key = (name, init, protocol, fraction, seed)
        if key not in self.runs:
            return False
        need = self.runs[key] * self.speed
        if time.time() + need > self.deadline():
            est = self.runs.pop(key)
            self.total_est -= est
            self.skipped.append({"name": name, "fraction": fraction, "seed": seed, "runs": [(init, protocol)],
                                 "seconds": need, "why": "the runs before it took longer than planned",
                                 "extra": False})
            return False
        return True

    def ran(self, name: str, init: str, protocol: str, fraction: float, seed: int, res: dict, seconds: float) -> None:
        est = self.runs.get((name, init, protocol, fraction, seed), 0.0)
        self.measured[0] += est
        self.measured[1] += seconds
        self.speed = self.measured[1] / max(self.measured[0], 1e-9)
        self.done_est += est

    def frozen_ran(self, name: str, fraction: float, seed: int, seconds: float) -> None:
        self.done_est += self._frozen_seconds(name, fraction)
        self.frozen_measured[(name, fraction)] = seconds

    def share_done(self) -> float:
        return min(1.0, self.done_est / self.total_est)

    # --- what it says ---------------------------------------------------------------------------------------------
    def eta(self) -> float:
        """Estimated seconds of the whole study from its start."""
        return self.fixed + self.eval_estimate

    def command(self, item: dict) -> str:
        """The command that runs a skipped item into this study's folder."""
        ev = self.ev
        protocols, bases = _evaluate_args(item["runs"])
        if not item["runs"]:  # a subset's frozen-feature runs only
            protocols = [p for p in ev.protocols if PROTOCOLS[p].frozen]
            bases = [b for b in ev.baselines if b in ("raw", "pixels", "tfidf")]
        if item["name"] != "ssl":  # only a study runs these rows: the study's own command without its limit
            words = shlex.split(self.study_command) if self.study_command else ["sslab", "study", "..."]
            keep, skip = [], 0
            for w in words:
                if skip or w in ("--resume", "--overwrite"):
                    skip = 0
                elif w in ("--time", "--out"):
                    skip = 1
                elif not w.startswith(("--time=", "--out=")):
                    keep.append(w)
            return " ".join(shlex.quote(w) for w in keep + ["--time", "none", "--out", f"{self.run_dir}-full"])
        parts = ["sslab", "evaluate", self.run_dir, "--labels", f"{item['fraction']:g}", "--seed-list",
                 str(item["seed"]), "--protocol", ",".join(protocols) or "none", "--baselines",
                 ",".join(bases) or "none"]
        defaults = EvalConfig()
        for key in ("val_items", "finetune_until", "finetune_images", "finetune_epochs", "finetune_min_steps",
                    "finetune_lr", "batch_size", "selftrain_images", "layer_decay", "fixmatch_ratio",
                    "fixmatch_threshold", "fixmatch_ema", "fixmatch_adaptive", "fixmatch_weight"):
            if getattr(ev, key) != getattr(defaults, key):
                parts.append(f"{key}={getattr(ev, key)}")
        return " ".join(shlex.quote(p) for p in parts)

    def skipped_groups(self) -> list[dict]:
        """The skipped items grouped by encoder, fraction and runs: {"what", "why", "seconds", "command"}."""
        groups: dict[tuple, dict] = {}
        for item in self.skipped:
            runs = tuple(item["runs"])
            key = (item["name"], item["fraction"], runs, item["why"])
            g = groups.setdefault(key, {"name": item["name"], "fraction": item["fraction"], "runs": list(runs),
                                        "seeds": [], "seconds": 0.0, "why": item["why"]})
            g["seeds"].append(item["seed"])
            g["seconds"] += item["seconds"]
        out = []
        for g in groups.values():
            seeds = sorted(g["seeds"])
            runs = ", ".join(f"{g['name'] if init == 'self' else init} {p}" for init, p in g["runs"]) or \
                "frozen-feature probes"
            cmds = [self.command({"name": g["name"], "fraction": g["fraction"], "seed": s, "runs": g["runs"]})
                    for s in seeds]
            item = {"encoder": g["name"], "fraction": g["fraction"], "labels": self.n_labels[g["fraction"]],
                    "seeds": seeds, "runs": [list(r) for r in g["runs"]], "rows": runs, "why": g["why"],
                    "seconds": round(g["seconds"], 1), "commands": cmds}
            out.append({**item, "what": _skipped_what(item)})
        return out

    def to_dict(self) -> dict:
        rows = []
        for name, subsets in self.subset_list.items():
            for f in sorted({f for f, _ in subsets}, key=self.n_labels.get):
                seeds = sorted(s for ff, s in subsets if ff == f)
                trained = sorted({(init, p) for (n, init, p, ff, s) in self.runs if n == name and ff == f})
                secs = sum(v for (n, _, _, ff, _), v in self.runs.items() if n == name and ff == f)
                rows.append({"encoder": name, "fraction": f, "labels": self.n_labels[f], "seeds": seeds,
                             "trained": [f"{name if i == 'self' else i} {p}" for i, p in trained],
                             "trained_seeds": sorted({s for (n, _, _, ff, s) in self.runs if n == name and ff == f}),
                             "seconds": round(secs + len(seeds) * self._frozen_seconds(name), 1)})
        return {"limit_seconds": self.limit, "pretrain_seconds": self.pretrain_seconds,
                "pretrainings": self.pretrainings, "features_seconds": round(self.features, 1),
                "evaluate_seconds": round(self.eval_estimate, 1), "eta_seconds": round(self.eta(), 1),
                "calibration": {n: {k: v for k, v in e["costs"].items()} for n, e in self.encoders.items()},
                "fine_tune_steps": {f"{f:g}": self.steps(f, "finetune")[0] for f in self.ev.fractions},
                "run_cap": f"{CAP_FACTOR:g} x the estimated steps, and what fits before the deadline",
                "rows": rows, "skipped": self.skipped_groups()}

    def lines(self) -> list[str]:
        return plan_lines(self.to_dict())


def _skipped_what(g: dict) -> str:
    return f"{label_text(g['fraction'])} labels ({g['labels']:,}), {seeds_text(g['seeds'])}: {g['rows']}"


def settle_skipped(skipped: list[dict], runs: list[dict]) -> list[dict]:
    """A saved plan's skipped groups less the seeds whose runs `runs` (a results.json's) now hold (`sslab evaluate
    --seed-list` ran them into the study's folder)."""
    have = {(r["init"], r["protocol"], r["fraction"], r["seed"]) for r in runs}
    out = []
    for g in skipped:
        if "seeds" not in g:  # saved before the groups said their seeds
            out.append(g)
            continue
        name, f = g["encoder"], g["fraction"]
        wanted = [(name if init == "self" else init, p) for init, p in g["runs"]]
        done = (lambda s: all((init, p, f, s) in have for init, p in wanted)) if wanted else \
            (lambda s: any((name, p, f, s) in have for p in PROTOCOLS if PROTOCOLS[p].frozen))  # frozen-only
        keep = [i for i, s in enumerate(g["seeds"]) if not done(s)]
        partial = [i for i in keep if wanted and any((init, p, f, g["seeds"][i]) in have for init, p in wanted)]
        whole = [i for i in keep if i not in partial]
        if whole:
            part = {**g, "seeds": [g["seeds"][i] for i in whole], "commands": [g["commands"][i] for i in whole],
                    "seconds": round(g["seconds"] * len(whole) / len(g["seeds"]), 1)}
            out.append({**part, "what": _skipped_what(part)})
        for i in partial:  # some of the seed's runs were run: the others, with the command that runs those alone
            s = g["seeds"][i]
            runs = [r for r, (init, p) in zip(g["runs"], wanted) if (init, p, f, s) not in have]
            part = {**g, "seeds": [s], "runs": runs, "commands": [_only(g["commands"][i], runs)],
                    "rows": ", ".join(f"{init} {p}" for init, p in wanted if (init, p, f, s) not in have),
                    "seconds": round(g["seconds"] / len(g["seeds"]) * len(runs) / len(wanted), 1)}
            out.append({**part, "what": _skipped_what(part)})
    return out


def _evaluate_args(runs) -> tuple[list[str], list[str]]:
    """`sslab evaluate`'s --protocol and --baselines values that run `runs` ((init, protocol); init "self": the
    encoder's own rows, else a baseline: "scratch", or "scratch+aug" for its fine-tune, "scratch+fixmatch")."""
    protocols = sorted({p for init, p in runs if init == "self"})
    bases = sorted({f"{init}+{p}" if p != "finetune" else init for init, p in runs if init != "self"})
    return protocols, bases


def _only(command: str, runs: list) -> str:
    """An `sslab evaluate` command of `Plan.command` narrowed to `runs` ([init, protocol]; init "self": the
    encoder's own rows)."""
    words = shlex.split(command)
    for flag, value in zip(("--protocol", "--baselines"), _evaluate_args(runs)):
        if flag in words:
            words[words.index(flag) + 1] = ",".join(value) or "none"
    return " ".join(shlex.quote(w) for w in words)


class _Bound(Schedule):
    """A plan seen as the schedule of one of its encoders: the harness's rows of that encoder (init = its name) are
    the plan's "self" rows."""

    def __init__(self, plan: Plan, key: str):
        self.plan, self.key = plan, key

    def _init(self, name: str, init: str) -> str:
        return "self" if init == name else init

    def subsets(self, name):
        return self.plan.subsets(self.key)

    def trains(self, name, init, protocol, fraction, seed):
        return self.plan.trains(self.key, self._init(name, init), protocol, fraction, seed)

    def cap(self, name, fraction, protocol="finetune"):
        return self.plan.cap(self.key, fraction, protocol)

    def ran(self, name, init, protocol, fraction, seed, res, seconds):
        self.plan.ran(self.key, self._init(name, init), protocol, fraction, seed, res, seconds)

    def frozen_ran(self, name, fraction, seed, seconds):
        self.plan.frozen_ran(self.key, fraction, seed, seconds)

    def subset_done(self, name, fraction, seed):
        return self.plan.share_done()

    def share_done(self):
        return self.plan.share_done()
