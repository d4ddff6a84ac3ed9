"""The study's plan: what fits a time limit, in which order it is dropped, how it corrects itself while it runs, and
that a skipped run's command adds it to the study afterwards."""
import json
import shlex
import time

import numpy as np
import pytest

from sslab import StudyConfig, load_config
from sslab.studies.plan import Plan

COSTS = {"step": 0.01, "train": 1e-4, "eval": 2e-5}  # seconds: a step's fixed cost, a trained item, a forward item


def _plan(limit, overrides=(), encoders=None, started=None, pretrain=60.0):
    cfg = load_config(StudyConfig, overrides=["eval.seeds=3", "eval.finetune_seeds_large=2", *overrides])
    y = np.repeat(np.arange(10), 580)  # 5,800 labelled items of 10 classes: 1% = 60, 10% = 580
    enc = encoders or {"ssl": {"costs": COSTS, "baselines": True, "protocols": ["finetune"]}}
    return Plan(cfg, enc, y, 10, 6_000, 1_000, limit, time.time() if started is None else started, pretrain)


def _subsets(plan, name="ssl"):
    return [(f, s) for f, s in plan.subset_list[name]]


def test_no_limit_runs_everything_seed_major():
    plan = _plan(None)
    assert not plan.skipped
    trained = sorted({(f, s) for (_, init, _, f, s) in plan.runs})
    assert trained == [(0.01, 0), (0.01, 1), (0.01, 2), (0.1, 0), (0.1, 1), (1.0, 0), (1.0, 1)]
    assert list(plan.bind("ssl").subsets("ssl"))[:3] == [(0.01, 0), (0.1, 0), (1.0, 0)]  # seed 0 of each first
    assert (1.0, 2) in _subsets(plan) and not any(k[3:] == (1.0, 2) for k in plan.runs)  # frozen probes only


def test_seeds_go_before_fractions_and_100_percent_first():
    full = _plan(None)
    per_subset = {fs: sum(v for k, v in full.runs.items() if k[3:] == fs) for fs in _subsets(full)}
    fixed = full.fixed
    # room for seed 0 of 1% and 10% and one more 1% subset, not for 100% (the costliest)
    room = per_subset[(0.01, 0)] + per_subset[(0.1, 0)] + per_subset[(0.01, 1)] + 2
    plan = _plan((fixed + room) / 0.95 + 1)
    trained = sorted({(f, s) for (_, _, _, f, s) in plan.runs})
    assert (0.01, 0) in trained and (0.1, 0) in trained
    assert not any(f == 1.0 for f, _ in trained)
    assert plan.eta() <= plan.limit
    skipped = plan.to_dict()["skipped"]
    assert any(g["what"].startswith("100% labels (5,800), seeds 0-1") for g in skipped)
    for g in skipped:
        assert g["why"] == "does not fit the time limit"
        for cmd in g["commands"]:
            assert cmd.startswith("sslab evaluate ") and "--seed-list" in cmd and "--labels" in cmd
    lines = plan.lines()
    assert lines[0].startswith("plan (time limit ") and any(x.strip().startswith("skipped") for x in lines)


def test_runs_that_would_pass_the_deadline_are_skipped_and_faster_runs_make_room():
    plan = _plan(600)
    plan.started -= 560  # the pretraining took much longer than planned: 4 s before the deadline, no trained run fits
    sched = plan.bind("ssl")
    first = next(iter(sched.subsets("ssl")))
    assert not sched.trains("ssl", "ssl", "finetune", *first)
    assert any(s["why"] == "the runs before it took longer than planned" for s in plan.skipped)

    full = _plan(None)
    plan = _plan((full.fixed + 0.5 * full.eval_estimate) / 0.95)  # room for half of the runs
    assert plan.skipped, "the limit should leave something out"
    sched = plan.bind("ssl")
    n_planned = len(plan.runs)
    plan.speed = 0.05  # the runs so far took a twentieth of their estimate
    trained = {k[3:] for k in plan.runs}
    order = list(sched.subsets("ssl"))  # after the planned trained subsets, skipped ones that now fit are taken up
    assert len(plan.runs) > n_planned
    assert len(order) == len(set(order)) == 3 * 3  # every subset once, topped-up ones included
    assert set(order[: len(trained)]) == trained


def test_the_time_saved_is_not_taken_up_while_another_encoders_features_are_to_come():
    """Own SSL's runs were faster than estimated, but the foundation's features are still to be extracted: the
    skipped subsets of own SSL are taken up only in what is left after them."""
    slow = {**COSTS, "eval": 4e-3}  # 7,000 items: 28 s of features
    enc = {"ssl": {"costs": COSTS, "baselines": True, "protocols": ["finetune"]},
           "foundation": {"costs": slow, "baselines": False, "protocols": [], "rank": 0}}
    full = _plan(None, encoders=enc)
    limit = (full.fixed + 0.5 * full.eval_estimate) / 0.95
    for pending, grows in ((True, False), (False, True)):
        plan = _plan(limit, encoders=enc)
        assert plan.skipped and plan.has_runs("foundation")
        n_planned = len(plan.runs)
        plan.speed = 0.05
        plan.started -= plan.deadline() - time.time() - 20  # 20 s left: less than the foundation's 28 s of features
        if not pending:
            plan.begun["foundation"].add((0.01, 0))  # its features extracted and its subsets begun
        list(plan.bind("ssl").subsets("ssl"))
        assert (len(plan.runs) > n_planned) == grows


def test_text_recipes_fixed_budgets_are_counted_exactly():
    plan = _plan(None, ["eval.finetune_until=budget", "eval.val_items=0", "eval.finetune_images=10000",
                        "eval.finetune_min_steps=80", "eval.finetune_epochs=30"])
    steps, bs, _ = plan.steps(0.01, "finetune")  # 60 labels: 30 epochs of one batch of 60, at least 80 steps
    assert (steps, bs) == (80, 60)
    assert plan.cap("ssl", 0.01) is None


@pytest.mark.slow
def test_skipped_runs_join_the_study_with_their_command(tmp_path, monkeypatch, capsys):
    """A digits study with a limit too short for everything: the plan is printed before training, saved and shown
    in the report, the study ends, and the command given for a skipped subset adds its rows to the study."""
    from sslab.cli import main

    monkeypatch.setenv("SSLAB_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "study"
    args = ["study", "--data", "digits", "--time", "40s", "--out", str(out), "eval.seeds=8",
            "eval.finetune_seeds_large=8",
            "eval.fractions=[0.1,1.0]", "eval.protocols=[knn,finetune]", "eval.baselines=[scratch]",
            "eval.finetune_epochs=30", "eval.finetune_min_steps=40"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.index("plan (time limit 40s") < printed.index("pretrained vicreg")
    res = json.loads((out / "results.json").read_text())
    assert res["plan"]["limit_seconds"] == 40 and res["plan"]["pretrain_seconds"] == 8  # 20% of the limit
    assert "<h2>Plan</h2>" in (out / "report.html").read_text()
    skipped = res["plan"]["skipped"]
    if not skipped:
        pytest.skip("this machine ran every subset within 40 s")
    cmd = shlex.split(skipped[0]["commands"][0])
    assert cmd[:3] == ["sslab", "evaluate", str(out)]
    before = {(r["init"], r["protocol"], r["fraction"], r["seed"]) for r in res["runs"]}
    assert main(cmd[1:]) == 0
    after = json.loads((out / "results.json").read_text())
    keys = {(r["init"], r["protocol"], r["fraction"], r["seed"]) for r in after["runs"]}
    assert before < keys  # the earlier rows kept, the skipped subset's added


def test_fixmatch_alone_counts_the_teacher_it_trains_and_budget_runs_are_counted_as_such():
    both = _plan(None, encoders={"ssl": {"costs": COSTS, "baselines": False, "protocols": ["finetune", "fixmatch"]}})
    alone = _plan(None, encoders={"ssl": {"costs": COSTS, "baselines": False, "protocols": ["fixmatch"]}})
    key = ("ssl", "self", "fixmatch", 0.01, 0)
    assert alone.runs[key] == pytest.approx(both.runs[key] + both.runs[("ssl", "self", "finetune", 0.01, 0)])
    budget = _plan(None, ["eval.finetune_until=budget", "eval.finetune_images=6000", "eval.finetune_min_steps=10"],
                   encoders={"ssl": {"costs": COSTS, "baselines": False, "protocols": ["finetune", "fixmatch"]}})
    assert budget.steps(0.01, "fixmatch")[0] == budget.steps(0.01, "finetune")[0] == 100  # 100 epochs of 60


def test_a_plan_without_an_encoder_gives_its_time_to_the_others():
    enc = {"ssl": {"costs": COSTS, "baselines": True, "protocols": ["finetune"]},
           "adapted": {"costs": COSTS, "baselines": False, "protocols": ["finetune"]}}
    full = _plan(None, encoders=enc)
    plan = _plan((full.fixed + 0.6 * full.eval_estimate) / 0.95, encoders=enc, pretrain=60.0)
    alone = plan.without("adapted", 60.0, 1)
    assert "adapted" not in alone.subset_list and alone.has_trained("ssl") and not alone.has_trained("adapted")
    assert len(alone.runs) > sum(1 for k in plan.runs if k[0] == "ssl")


def test_running_a_skipped_subset_takes_it_off_the_saved_plan():
    from sslab.studies.plan import settle_skipped

    plan = _plan((_plan(None).fixed + 30) / 0.95)
    groups = plan.to_dict()["skipped"]
    g = next(g for g in groups if g["runs"] and len(g["seeds"]) > 1)
    s0 = g["seeds"][0]
    runs = [{"init": "ssl" if i == "self" else i, "protocol": p, "fraction": g["fraction"], "seed": s0}
            for i, p in g["runs"]]
    after = settle_skipped(groups, runs)
    g2 = next(x for x in after if (x["fraction"], x["runs"], x["why"]) == (g["fraction"], g["runs"], g["why"]))
    assert g2["seeds"] == g["seeds"][1:] and len(g2["commands"]) == len(g["commands"]) - 1
    assert f"--seed-list {s0} " not in " ".join(g2["commands"]) and len(after) == len(groups)


def test_the_first_subsets_fixmatch_comes_right_after_the_core_runs_of_seed_0():
    """Room for seed 0's core runs and a little more: the fixmatch row at 1% is measured before seed 1's core runs
    (every row at least once), the other extras after them."""
    enc = {"ssl": {"costs": COSTS, "baselines": True, "protocols": ["finetune", "fixmatch"]}}
    full = _plan(None, encoders=enc)
    core0 = sum(v for k, v in full.runs.items() if k[4] == 0 and k[2] != "fixmatch")
    fm0 = full.runs[("ssl", "self", "fixmatch", 0.01, 0)]
    frozen = 3 * full._frozen_seconds("ssl")  # seed 0's three subsets
    plan = _plan((full.fixed + core0 + fm0 + frozen + 1) / 0.95, encoders=enc)
    assert ("ssl", "self", "fixmatch", 0.01, 0) in plan.runs
    assert not any(k[4] == 1 for k in plan.runs) and ("ssl", "self", "fixmatch", 0.1, 0) not in plan.runs


def test_the_foundation_is_planned_first_and_the_adapted_model_after_the_next_seed():
    """Room for little: the foundation's runs on a subset come before own SSL's, and the adapted model's subsets
    only after the next seed of the others (so a tight limit drops them, and with them their pretraining)."""
    costly = {**COSTS, "train": 1e-3}
    enc = {"ssl": {"costs": COSTS, "baselines": True, "protocols": ["finetune"]},
           "foundation": {"costs": costly, "baselines": False, "protocols": ["finetune"], "rank": 0},
           "adapted": {"costs": costly, "baselines": False, "protocols": ["finetune"], "defer": 1.5}}
    full = _plan(None, encoders=enc)
    f0 = full.runs[("foundation", "self", "finetune", 0.01, 0)]
    plan = _plan((full.fixed + f0 + 3 * 3.0 + 1) / 0.95, encoders=enc)
    assert ("foundation", "self", "finetune", 0.01, 0) in plan.runs
    assert not plan.has_trained("adapted") and not plan.has_trained("ssl")


def test_a_foundation_whose_features_alone_overrun_the_limit_is_left_out_and_too_short_a_limit_is_named():
    """The sweep's text study at --time 3m: the foundation's features take most of the limit, so nothing of any
    encoder fits; without the foundation own SSL's rows do. A limit under which nothing fits says which would."""
    slow = {**COSTS, "eval": 2e-2}  # 7,000 items: 140 s of features
    enc = {"ssl": {"costs": COSTS, "baselines": True, "protocols": ["finetune"]},
           "foundation": {"costs": slow, "baselines": False, "protocols": ["finetune"], "rank": 0}}
    plan = _plan(120.0, encoders=enc, pretrain=20.0)
    assert plan.features_seconds("foundation") == pytest.approx(140.0)
    assert not plan.has_runs("foundation") and not plan.has_runs("ssl")
    alone = plan.without("foundation", 20.0, 1)
    assert alone.has_runs("ssl") and alone.has_trained("ssl")
    tiny = _plan(20.0, pretrain=20.0)
    assert not tiny.has_runs("ssl")
    enough = _plan(tiny.shortest_limit() + 5, pretrain=20.0)  # (its calibration's elapsed seconds differ a little)
    assert enough.has_runs("ssl")


def test_a_skipped_foundation_row_gives_the_study_command_that_runs_it():
    plan = _plan(60.0)
    plan.study_command = "sslab study --data 'my file.csv' --time 3m --out runs/x --overwrite"
    cmd = plan.command({"name": "foundation", "fraction": 0.01, "seed": 0, "runs": [("self", "setfit")]})
    assert shlex.split(cmd) == ["sslab", "study", "--data", "my file.csv", "--time", "none", "--out",
                                f"{plan.run_dir}-full"]


def test_a_skipped_subset_run_in_part_keeps_the_rest_with_the_command_that_runs_only_those():
    from sslab.studies.plan import settle_skipped

    plan = _plan((_plan(None).fixed + 30) / 0.95, overrides=["eval.baselines=[scratch,scratch+aug]"])
    groups = plan.to_dict()["skipped"]
    g = next(g for g in groups if len(g["runs"]) == 3)
    s0 = g["seeds"][0]
    after = settle_skipped(groups, [{"init": "ssl", "protocol": "finetune", "fraction": g["fraction"], "seed": s0},
                                    {"init": "scratch", "protocol": "finetune", "fraction": g["fraction"], "seed": s0}])
    rest = next(x for x in after if x["fraction"] == g["fraction"] and x["seeds"] == [s0])
    assert rest["rows"] == "scratch+aug finetune" and rest["runs"] == [["scratch+aug", "finetune"]]
    words = shlex.split(rest["commands"][0])
    assert words[words.index("--protocol") + 1] == "none" and words[words.index("--baselines") + 1] == "scratch+aug"
    assert len(after) == len(groups) + (len(g["seeds"]) > 1)
