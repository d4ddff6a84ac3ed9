"""A run folder: run.json (what rebuilds the run's networks), backbone.safetensors and checkpoint/; the networks
of a finished run rebuilt from them."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from sslab.checkpoint import load_checkpoint, load_weights
from sslab.config import PretrainConfig
from sslab.errors import SslabError
from sslab.methods import Method, build_for_data


def run_info(cfg: PretrainConfig, meta: dict, data_spec: str) -> dict:
    """run.json: what rebuilds the run's networks (method, backbone, the data kind's meta) and its settings."""
    return {"method": cfg.method, "method_args": cfg.method_args, "backbone": cfg.backbone, **meta,
            "data": data_spec, "config": cfg.model_dump()}


def read_run_info(run_dir: str | Path) -> dict:
    try:
        info = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        raise SslabError(f"{run_dir} is not a pretraining run (no readable run.json)") from None
    info["run_dir"] = str(run_dir)
    return info


def method_from_info(info: dict) -> Method:
    """A freshly initialised method of the architecture and data description a run recorded in run.json."""
    cfg = PretrainConfig.model_validate(info["config"]) if "config" in info else None
    return build_for_data(info["method"], info["backbone"], info.get("method_args", {}), info, cfg)


def _pretrained(run_dir: str | Path) -> tuple[Method, dict]:
    """A run's method rebuilt from run.json with the pretrained backbone weights (`backbone.safetensors`)."""
    info = read_run_info(run_dir)
    model = method_from_info(info)
    try:
        model.backbone.load_state_dict(load_weights(Path(run_dir) / "backbone.safetensors"))
    except RuntimeError:  # e.g. a T5 run saved before its backbone became the whole encoder-decoder
        raise SslabError(f"{run_dir}: backbone.safetensors does not fit the {info.get('method')} network this sslab "
                         "version builds (a run from an older version?); pretrain it again") from None
    return model, info


def load_encoder(run_dir: str | Path) -> tuple[torch.nn.Module, dict]:
    """The pretrained encoder of a run (`encoder()` of its method, backbone weights from
    `run_dir/backbone.safetensors`): a module from a raw batch of the run's data kind to features, in eval mode."""
    model, info = _pretrained(run_dir)
    return model.encoder().eval(), info


def load_backbone(run_dir: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild a pretrained backbone (the network transfer starts from) from `run_dir/run.json` and
    `run_dir/backbone.safetensors`."""
    model, info = _pretrained(run_dir)
    return model.backbone, info


def load_method(run_dir: str | Path) -> tuple[Method, dict]:
    """Rebuild the full pretrained method (backbone + projector and any other heads) of a run from
    `run_dir/run.json` and the last checkpoint `run_dir/checkpoint/model.safetensors`, in eval mode."""
    info = read_run_info(run_dir)
    model = method_from_info(info)
    weights, _ = load_checkpoint(Path(run_dir) / "checkpoint")
    model.load_state_dict(weights)
    return model.eval(), info
