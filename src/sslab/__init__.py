"""sslab: self-supervised pretraining and label-efficiency measurement in one Python API and CLI.

    import sslab
    splits = sslab.load_images("fashion-mnist")
    run = sslab.pretrain(splits.train, sslab.PretrainConfig(method="vicreg", budget=300), "runs/v1")
    results = sslab.evaluate_run("runs/v1", sslab.EvalConfig())
"""
__version__ = "0.1.0"

from sslab.config import EvalConfig, PretrainConfig, StudyConfig, load_config  # noqa: E402
from sslab.data import label_subset, load_images  # noqa: E402
from sslab.engine import load_backbone, load_method, pretrain  # noqa: E402
from sslab.errors import SslabError  # noqa: E402
from sslab.methods import METHODS, build_method, register  # noqa: E402
from sslab.nets import build_backbone  # noqa: E402
from sslab.report import write_report  # noqa: E402
from sslab.study import evaluate_run, study  # noqa: E402

__all__ = ["EvalConfig", "PretrainConfig", "StudyConfig", "load_config", "load_images", "label_subset", "pretrain",
           "load_backbone", "load_method", "SslabError", "METHODS", "build_method", "register", "build_backbone", "write_report",
           "evaluate_run", "study"]
