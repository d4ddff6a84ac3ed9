"""The main job as the Python API gives it (and `sslab study` / `sslab evaluate` run it): the study layer measures
and writes results.json, then the report layer renders report.html and its figures beside it."""
from __future__ import annotations

from pathlib import Path

from sslab.config import EvalConfig, StudyConfig
from sslab.data import default_image_size
from sslab.errors import SslabError
from sslab.evaluate.saved import SAVED, ModelKeeper
from sslab.report import write_report
from sslab.studies import job


def study(cfg: StudyConfig, out: str | Path, root=None, command: str = "", log=job.say, show_progress=True,
          budget_fixed: bool = False) -> dict:
    """Plan, pretrain, evaluate every planned run, draw findings (see `sslab.studies.job.study`), then write
    report.html; returns results.json's content."""
    with default_image_size(cfg.pretrain.image_size):  # the side every image load of the study decodes at
        results = job.study(cfg, out, root, command, log, show_progress, budget_fixed)
    log(f"report: {write_report(out, results)}")
    return results


def evaluate_run(run_dir: str | Path, cfg: EvalConfig, data: str | None = None, root=None, log=job.say,
                 seeds: list[int] | None = None, save_model: bool = False) -> dict:
    """Evaluate a saved pretraining run (see `sslab.studies.job.evaluate_run`), then write its report.html.
    `save_model`: keep the best seed's fine-tuned model of each trained protocol in `evaluate.saved.SAVED` and
    fraction in `<run_dir>/models/` (`sslab.export.load_classifier` reads one, `sslab export --model` exports it)."""
    keeper = None
    if save_model:
        if not set(SAVED) & set(cfg.protocols):
            raise SslabError(f"--save-model keeps fine-tuned models: add {' or '.join(SAVED)} to the protocols "
                             f"(now {', '.join(cfg.protocols) or 'none'})")
        keeper = ModelKeeper(run_dir, merge=seeds is not None)
    with default_image_size(_image_size(run_dir)):  # images decoded at the side the run was pretrained at
        results = job.evaluate_run(run_dir, cfg, data, root, log, seeds, keeper)
    for line in keeper.lines() if keeper is not None else []:
        log(line)
    write_report(run_dir, results)
    return results


def _image_size(run_dir: str | Path) -> int | None:
    """The image side a run's settings named (pretrain.image_size), if any: an unreadable run.json is left for the
    evaluation to report."""
    import json

    try:
        size = json.loads((Path(run_dir) / "run.json").read_text())["config"].get("image_size")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return size if isinstance(size, int) else None
