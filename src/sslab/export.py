"""Exporting a trained run for use outside sslab: `export_run(run_dir, fmt, out)` writes the run's encoder (the network
transfer uses, `sslab.engine.load_encoder`) as

* ``onnx``: ``model.onnx``, traced with PyTorch's TorchScript-based ONNX exporter, batch (and text: sequence) axes
  dynamic, run and compared in onnxruntime before it is kept;
* ``torchscript``: ``model.pt``, ``torch.jit.trace`` of the same module (``torch.jit.load`` reads it);
* ``timm``: ``model.safetensors`` + ``config.json`` in timm's layout, for image runs whose network is a timm model
  (``timm:<model>`` backbones and sslab's Vision Transformers): ``timm.create_model("local-dir:<out>",
  pretrained=True)``;
* ``hf``: the text model in Hugging Face's ``save_pretrained`` layout with its tokenizer
  (``transformers.AutoModel.from_pretrained(<out>)``).

The exported module takes what a user has, not sslab's batches: images as float (B, C, H, W) in [0, 1] (the
network normalises with the run's statistics inside), text as ``input_ids`` and ``attention_mask`` (int64, (B, T)).
An optional linear classifier (``head``: a safetensors file with ``weight`` (classes, dim) and ``bias``) makes it
output class scores instead of features; so does a fine-tuned model (``model``: a file that `sslab evaluate
--save-model` kept), whose tuned encoder is exported with its head (`load_classifier` gives it in Python). Every
export goes into its own folder with a sidecar ``export.json`` (the exact inputs and outputs, the versions, and the
largest difference measured against sslab's encoder when the export was made); the folder appears whole or not at
all.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from sslab.atomic import atomic_write
from sslab.checkpoint import load_weights, load_weights_metadata, save_weights
from sslab.engine import load_encoder, load_method, method_from_info, read_run_info
from sslab.errors import SslabError
from sslab.methods.base import ImageEncoder
from sslab.nets.image import Pretrained
from sslab.nets.text import BagOfVectors
from sslab.version import __version__

FORMATS = {
    "onnx": "model.onnx for onnxruntime (dynamic batch axis)",
    "torchscript": "model.pt for torch.jit.load",
    "timm": "model.safetensors + config.json for timm.create_model (image runs on a timm network)",
    "hf": "a Hugging Face model folder for transformers.AutoModel (text runs)",
}
SIDECAR = "export.json"
WEIGHTS = "backbone.safetensors"
FALLBACK_OPSET = 17
TRACE_BATCH, CHECK_BATCH = 2, 3  # the check runs on another batch size than the trace: the batch axis is dynamic
MAX_DIFF = 1e-2  # an export differing from sslab's encoder by more (relative to the features' scale) is refused


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None, head: str | Path | None = None,
               model: str | Path | None = None) -> Path:
    """Export the encoder of the run in `run_dir` in format `fmt` (FORMATS) into the folder `out` (default
    `<run_dir>/export/<fmt>`; an earlier export there is replaced, any other non-empty folder refused), with the
    linear classifier in `head` on top when given, or the fine-tuned encoder and head of `model` (a file kept by
    `sslab evaluate --save-model`). Returns the folder. Bad input raises a one-line SslabError."""
    if fmt not in FORMATS:
        raise SslabError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if head is not None and model is not None:
        raise SslabError("give --head (a classifier on the pretrained encoder) or --model (a fine-tuned encoder with "
                         "its head), not both")
    if model is not None and fmt == "hf":
        raise SslabError("hf export writes the pretrained text model; export a fine-tuned model (--model) as onnx or "
                         "torchscript")
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise SslabError(f"run folder not found: {run_dir}")
    info = read_run_info(run_dir)
    if not (run_dir / WEIGHTS).is_file():
        raise SslabError(f"{run_dir} holds no trained weights ({WEIGHTS} missing: pretraining writes it at its first "
                         "checkpoint)")
    out = Path(out).expanduser() if out is not None else run_dir / "export" / fmt
    _check_out(out)
    if fmt == "onnx":
        _need_onnx()
    if fmt == "timm" and info.get("kind", "image") == "text":
        raise SslabError(f"timm export is for image runs; {run_dir} is a {info.get('method')} run on text (export it "
                         "as hf, onnx or torchscript)")
    if fmt == "hf" and info.get("kind") != "text":
        raise SslabError(f"hf export is for text runs; {run_dir} is a {info.get('method')} run on "
                         f"{info.get('kind', 'image')} data (export it as onnx, torchscript or timm)")
    model_meta = None
    if model is not None:
        encoder, linear, about, info = read_classifier(run_dir, model)
        model_meta = {"file": str(Path(model).expanduser().resolve()), "classes": linear.out_features,
                      "class_names": about.get("classes"),
                      **{k: about.get(k) for k in ("protocol", "fraction", "seed", "val_acc", "test_acc", "data")}}
    else:
        encoder, info = load_encoder(run_dir)
        linear = _read_head(head, encoder.dim) if head is not None else None
    with _staged(out) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's and exporter's notes are not the user's business
        meta = WRITERS[fmt](encoder, info, tmp, linear)
        if model_meta is not None:
            meta["check"]["against"] = "sslab.export.load_classifier on the same inputs"
        head_meta = {"file": str(Path(head).expanduser().resolve()), "classes": linear.out_features} \
            if head is not None else None
        sidecar = {"format": fmt, "sslab_version": __version__, "torch_version": torch.__version__,
                   "run": str(run_dir.resolve()), "method": info.get("method"), "backbone": info.get("backbone"),
                   "kind": info.get("kind", "image"), "data": info.get("data"), "head": head_meta,
                   "model": model_meta, **meta}
        sidecar["files"] = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()) + [SIDECAR]
        atomic_write(tmp / SIDECAR, (json.dumps(sidecar, indent=2) + "\n").encode())
    return out


# ------------------------------------------------------------------------------------------- what is exported
class ImageModel(nn.Module):
    """Float images (B, C, H, W) in [0, 1] -> features (B, dim), or class scores (B, classes) with a head."""

    def __init__(self, backbone: nn.Module, head: nn.Linear | None = None):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)
        return features if self.head is None else self.head(features)


class TextModel(nn.Module):
    """input_ids, attention_mask (B, T) int64 -> pooled features (B, dim), or class scores with a head."""

    def __init__(self, encoder: nn.Module, head: nn.Linear | None = None):
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features = self.encoder({"input_ids": input_ids, "attention_mask": attention_mask})
        return features if self.head is None else self.head(features)


class WordVectorAverage(nn.Module):
    """`BagOfVectors` written with operators ONNX has (a comparison with each skipped id instead of `torch.isin`):
    the average of the vectors of the known words of each text."""

    def __init__(self, bag: BagOfVectors):
        super().__init__()
        self.net, self.dim = bag.net, bag.dim
        self.register_buffer("skip_ids", bag.skip_ids.clone(), persistent=False)

    def forward(self, batch: dict) -> torch.Tensor:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        known = mask.bool() & ~(ids.unsqueeze(-1) == self.skip_ids).any(-1)
        v = nn.functional.embedding(ids, self.net.vectors())
        m = known.unsqueeze(-1).to(v.dtype)
        return (v * m).sum(1) / m.sum(1).clamp(min=1.0)


def wrap(encoder: nn.Module, info: dict, head: nn.Linear | None = None) -> tuple[nn.Module, dict]:
    """The module an export traces, and a description of its inputs and output: (module, description) where the
    description holds `inputs` (name, shape, dtype, meaning), `outputs` and `output_dim`."""
    out_dim = head.out_features if head is not None else encoder.dim
    output = {"name": "scores" if head is not None else "features", "shape": ["batch", out_dim], "dtype": "float32"}
    if isinstance(encoder, ImageEncoder):
        net = encoder.backbone
        chans, side = info["in_chans"], info["image_size"]
        pixels = {"name": "images", "shape": ["batch", chans, side, side], "dtype": "float32",
                  "description": "RGB/grey pixels in [0, 1] (uint8 / 255), channels first; the model normalises "
                                 f"them itself ((x - mean) / std, mean {_floats(net.mean)}, std {_floats(net.std)})"}
        if isinstance(net, Pretrained):
            pixels["description"] += f"; it resizes them to {net.size} px inside"
        return ImageModel(net, head).eval(), {"inputs": [pixels], "outputs": [output], "output_dim": out_dim,
                                              "image_size": side, "in_chans": chans}
    if info.get("kind") != "text" or not hasattr(encoder, "dim"):
        raise SslabError(f"cannot export a {info.get('method')} run on {info.get('kind')} data: its encoder is "
                         "neither an image nor a text encoder")
    trunk = getattr(encoder, "trunk", None)
    if trunk is not None and hasattr(getattr(trunk, "config", None), "use_cache"):
        trunk.config.use_cache = False  # features only: no key/value cache in the traced graph
    longest = info.get("context")
    ids = {"name": "input_ids", "shape": ["batch", "sequence"], "dtype": "int64",
           "description": f"token ids of the run's tokenizer (tokenizer/ beside the model), padded with id "
                         f"{info.get('pad_id')} on the right" + (f", at most {longest} tokens" if longest else "")}
    mask = {"name": "attention_mask", "shape": ["batch", "sequence"], "dtype": "int64",
            "description": "1 for a token, 0 for padding"}
    pooling = getattr(encoder, "pooling", "mean of the known words' vectors")
    inner = WordVectorAverage(encoder) if isinstance(encoder, BagOfVectors) else encoder
    return TextModel(inner, head).eval(), {"inputs": [ids, mask], "outputs": [output], "output_dim": out_dim,
                                             "pooling": pooling, "context": longest}


def example_inputs(info: dict, batch: int, encoder: nn.Module, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs of the exported module: random images, or random token ids with the second row half padding."""
    g = torch.Generator().manual_seed(seed)
    if isinstance(encoder, ImageEncoder):
        side = info["image_size"]
        return (torch.rand(batch, info["in_chans"], side, side, generator=g),)
    context = info.get("context") or 16
    length = max(2, min(context, 8 + 5 * seed))  # another length for the check than for the trace
    first = max(info.get("special_ids") or [0]) + 1
    vocab = int(info.get("vocab_size") or first + 100)
    ids = torch.randint(min(first, vocab - 1), vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, length // 2:] = 0
    ids[1, length // 2:] = info.get("pad_id") or 0
    return ids, mask


def _features(encoder: nn.Module, info: dict, inputs: tuple, head: nn.Linear | None) -> torch.Tensor:
    """What sslab's encoder gives on `inputs` (the reference every export is checked against)."""
    if isinstance(encoder, ImageEncoder):
        f = encoder(inputs[0])
    else:
        f = encoder({"input_ids": inputs[0], "attention_mask": inputs[1]})
    return f if head is None else head(f)


def _compare(ref: torch.Tensor, got, what: str) -> float:
    got = torch.as_tensor(got, dtype=torch.float32)
    if tuple(got.shape) != tuple(ref.shape):
        raise SslabError(f"the {what} gives outputs of shape {tuple(got.shape)}, sslab's encoder {tuple(ref.shape)}")
    diff = float((got - ref).abs().max())
    if not diff <= MAX_DIFF * max(1.0, float(ref.abs().max())):
        raise SslabError(f"the {what} differs from sslab's encoder by up to {diff:.3g}; not exported")
    return diff


def _check(diff: float, batch: int) -> dict:
    return {"max_abs_diff": diff, "batch": batch, "against": "sslab.engine.load_encoder on the same inputs"}


# ------------------------------------------------------------------------------------------- the formats
def _onnx(encoder: nn.Module, info: dict, tmp: Path, head: nn.Linear | None) -> dict:
    import onnx
    import onnxruntime as ort

    model, desc = wrap(encoder, info, head)
    names = [i["name"] for i in desc["inputs"]]
    axes = {n: {0: "batch"} | ({1: "sequence"} if len(desc["inputs"]) > 1 else {}) for n in names}
    axes[desc["outputs"][0]["name"]] = {0: "batch"}
    opset = onnx_opset()
    path = tmp / "model.onnx"
    try:
        with _quiet_stdout():  # the exporter prints the whole graph when it fails
            torch.onnx.export(model, example_inputs(info, TRACE_BATCH, encoder), str(path), dynamo=False,
                              opset_version=opset, input_names=names, output_names=[desc["outputs"][0]["name"]],
                              dynamic_axes=axes, do_constant_folding=True)
        onnx.checker.check_model(str(path))
    except SslabError:
        raise
    except Exception as err:  # the exporter raises many types for an operator it cannot write
        raise SslabError(f"torch.onnx could not export this {info.get('method')} encoder: {_first_line(err)}") from None
    check = example_inputs(info, CHECK_BATCH, encoder, seed=1)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {n: x.numpy() for n, x in zip(names, check)})[0]
    diff = _compare(_features(encoder, info, check, head), got, "ONNX model in onnxruntime")
    _save_tokenizer(info, tmp)
    return {**desc, "opset": opset, "exporter": "torch.onnx.export(dynamo=False)", "onnx_version": onnx.__version__,
            "onnxruntime_version": ort.__version__, "check": _check(diff, CHECK_BATCH)}


def _torchscript(encoder: nn.Module, info: dict, tmp: Path, head: nn.Linear | None) -> dict:
    model, desc = wrap(encoder, info, head)
    path = tmp / "model.pt"
    try:
        traced = torch.jit.trace(model, example_inputs(info, TRACE_BATCH, encoder), check_trace=False)
        torch.jit.save(traced, str(path))
    except Exception as err:
        raise SslabError(f"torch.jit.trace could not trace this {info.get('method')} encoder: "
                         f"{_first_line(err)}") from None
    check = example_inputs(info, CHECK_BATCH, encoder, seed=1)
    diff = _compare(_features(encoder, info, check, head), torch.jit.load(str(path))(*check), "TorchScript model")
    _save_tokenizer(info, tmp)
    return {**desc, "check": _check(diff, CHECK_BATCH)}


TIMM_CFG_KEYS = ("input_size", "fixed_input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std",
                 "num_classes", "pool_size", "first_conv", "classifier", "min_input_size", "test_input_size")


def timm_spec(backbone: nn.Module, info: dict) -> tuple[str, dict, dict]:
    """(architecture, model_args, pretrained_cfg) that rebuild the timm network inside an sslab image backbone, or a
    one-line error for a network that is not a timm model."""
    net = getattr(backbone, "net", None)
    if net is None or not type(net).__module__.startswith("timm."):
        kind = type(net).__name__ if net is not None else type(backbone).__name__
        raise SslabError(f"timm export needs a timm network; this run's backbone {info.get('backbone')!r} is a "
                         f"{kind} (timm ones: timm:<model>, vit-*); export it as onnx or torchscript")
    pretrained = isinstance(backbone, Pretrained)
    chans = 3 if pretrained else int(info["in_chans"])
    side = backbone.size if pretrained else int(info["image_size"])
    cfg = dict(getattr(net, "pretrained_cfg", None) or {})
    if cfg.get("architecture"):  # a registered model, built by timm.create_model(name, num_classes=0, in_chans=...)
        arch, args = cfg["architecture"], {"num_classes": 0, **({} if pretrained else {"in_chans": chans})}
    elif hasattr(net, "patch_embed") and hasattr(net, "blocks"):  # sslab's ViTs: timm's VisionTransformer class
        # a registered ViT of about its width; model_args set every size, so the name only picks timm's builder
        arch = f"vit_{'tiny' if net.embed_dim <= 192 else 'small' if net.embed_dim <= 384 else 'base'}_patch16_224"
        args = {"img_size": side, "patch_size": int(net.patch_embed.patch_size[0]), "in_chans": chans,
                "embed_dim": int(net.embed_dim), "depth": len(net.blocks),
                "num_heads": int(net.blocks[0].attn.num_heads),
                "global_pool": net.global_pool, "fc_norm": not isinstance(net.fc_norm, nn.Identity),
                "class_token": net.cls_token is not None, "num_classes": 0}
        cfg = {"fixed_input_size": True, "first_conv": "patch_embed.proj", "classifier": "head"}
    else:
        raise SslabError(f"timm export: cannot tell which timm architecture {type(net).__name__} is")
    cfg = {k: v for k, v in cfg.items() if k in TIMM_CFG_KEYS}
    cfg.update(input_size=[chans, side, side], mean=_floats(backbone.mean), std=_floats(backbone.std),
               num_classes=0, interpolation="bilinear", crop_pct=1.0, crop_mode="center", pool_size=None,
               custom_load=False)
    return arch, args, cfg


def _timm(encoder: nn.Module, info: dict, tmp: Path, head: nn.Linear | None) -> dict:
    import timm

    if not isinstance(encoder, ImageEncoder):
        raise SslabError(f"timm export is for image runs; a {info.get('method')} run has no image network")
    backbone = encoder.backbone
    arch, args, cfg = timm_spec(backbone, info)
    net = backbone.net
    if head is not None:
        args["num_classes"] = cfg["num_classes"] = head.out_features
    try:
        model = timm.create_model(arch, pretrained=False, **args).eval()
    except Exception as err:
        raise SslabError(f"timm cannot build {arch} with {args}: {_first_line(err)}") from None
    loaded = model.load_state_dict(net.state_dict(), strict=False)
    classifier = model.get_classifier() if head is not None else None
    if head is not None:
        if not isinstance(classifier, nn.Linear) or classifier.in_features != head.in_features:
            raise SslabError(f"timm export: the classifier of {arch} is not a linear layer on its {net.num_features} "
                             "features; export the head as onnx or torchscript")
        classifier.load_state_dict(head.state_dict())
    own = {f"{n}.{k}" for n, m in model.named_modules() if m is classifier for k in ("weight", "bias")}
    if loaded.unexpected_keys or [k for k in loaded.missing_keys if k not in own]:
        raise SslabError(f"timm export: {arch} built by timm does not match the run's network "
                         f"({len(loaded.missing_keys)} weights missing, {len(loaded.unexpected_keys)} unexpected)")
    config = {"architecture": arch, "num_classes": args["num_classes"], "num_features": int(net.num_features),
              "model_args": args, "pretrained_cfg": cfg}
    save_weights(tmp / "model.safetensors", model.state_dict())
    atomic_write(tmp / "config.json", (json.dumps(config, indent=2) + "\n").encode())
    # the check loads the files as a user would, and feeds timm the normalisation its pretrained_cfg names
    check = example_inputs(info, CHECK_BATCH, encoder, seed=1)[0]
    if isinstance(backbone, Pretrained) and check.shape[1] == 1:
        check = check.expand(-1, 3, -1, -1)
    side = cfg["input_size"][1]
    x = nn.functional.interpolate(check, size=(side, side), mode="bilinear", align_corners=False) \
        if check.shape[-1] != side else check
    x = (x - torch.tensor(cfg["mean"]).view(1, -1, 1, 1)) / torch.tensor(cfg["std"]).view(1, -1, 1, 1)
    reloaded = timm.create_model(f"local-dir:{tmp}", pretrained=True).eval()
    diff = _compare(_features(encoder, info, (check,), head), reloaded(x), "timm model")
    images = {"name": "x", "shape": ["batch", *cfg["input_size"]], "dtype": "float32",
              "description": "pixels in [0, 1] normalised with pretrained_cfg's mean and std (timm.data."
                             "resolve_data_config + create_transform do it)"}
    out = {"name": "scores" if head is not None else "features", "shape": ["batch", config["num_classes"] or
                                                                            config["num_features"]], "dtype": "float32"}
    return {"inputs": [images], "outputs": [out], "output_dim": out["shape"][1], "architecture": arch,
            "timm_version": timm.__version__, "check": _check(diff, CHECK_BATCH)}


def _hf(encoder: nn.Module, info: dict, tmp: Path, head: nn.Linear | None) -> dict:
    """The run's whole text model (trunk and pretraining heads, the weights of its last checkpoint; the trunk's those
    of backbone.safetensors, as the encoder's) written by the method's own `export`, with its tokenizer."""
    import transformers as tf

    from sslab.methods.text import load_tokenizer
    from sslab.nets.text import pool, text_base

    run_dir = Path(info["run_dir"])
    with _quiet_transformers():  # notes on the pretraining config's fields
        if (run_dir / "checkpoint" / "model.safetensors").is_file():
            method, _ = load_method(run_dir)
        else:
            method = method_from_info(read_run_info(run_dir))
    method.backbone.load_state_dict(load_weights(run_dir / WEIGHTS))
    staging = tmp / ".method"
    method.export(staging)
    if not (staging / "hf" / "config.json").is_file():
        raise SslabError(f"hf export: a {info.get('method')} run has no Hugging Face model (export it as onnx or "
                         "torchscript)")
    for item in (staging / "hf").iterdir():
        os.replace(item, tmp / item.name)
    shutil.rmtree(staging)
    tok_dir = run_dir / info.get("tokenizer", "tokenizer")
    if (tok_dir / "tokenizer.json").is_file():
        load_tokenizer(tok_dir).save_pretrained(str(tmp))
    if head is not None:
        save_weights(tmp / "classifier.safetensors", head.state_dict())
    with _quiet_transformers():  # the pretraining heads AutoModel leaves out are expected
        trunk = text_base(tf.AutoModel.from_pretrained(str(tmp), local_files_only=True)).eval()
    ids, mask = example_inputs(info, CHECK_BATCH, encoder, seed=1)
    got = pool(trunk(input_ids=ids, attention_mask=mask).last_hidden_state, mask, encoder.pooling)
    got = got if head is None else head(got)
    diff = _compare(_features(encoder, info, (ids, mask), head), got, "Hugging Face model")
    _, desc = wrap(encoder, info, head)
    encdec = getattr(trunk.config, "is_encoder_decoder", False)
    desc["outputs"] = [{"name": "last_hidden_state", "shape": ["batch", "sequence", encoder.dim], "dtype": "float32",
                        "description": f"sslab's features are its {encoder.pooling} pooling over attention_mask"
                                       + (" (a linear layer on them: classifier.safetensors)" if head else "")}]
    return {**desc, "load": ("transformers.T5EncoderModel" if encdec else "transformers.AutoModel")
            + ".from_pretrained(<this folder>)", "transformers_version": tf.__version__,
            "check": _check(diff, CHECK_BATCH)}


WRITERS = {"onnx": _onnx, "torchscript": _torchscript, "timm": _timm, "hf": _hf}


# ------------------------------------------------------------------------------------------- helpers
def onnx_opset() -> int:
    """The highest opset the installed torch's TorchScript-based ONNX exporter writes (17 when it does not say)."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as highest
    except ImportError:
        return FALLBACK_OPSET
    return int(highest)


def _need_onnx() -> None:
    for module, package in (("onnx", "onnx"), ("onnxruntime", "onnxruntime")):
        if importlib.util.find_spec(module) is None:
            raise SslabError(f"onnx export needs the {package} package: pip install {package} (or pip install "
                             "'sslab[export]')")


def _read_head(path: str | Path, dim: int) -> nn.Linear:
    """A linear classifier on the encoder's features from a safetensors file holding `weight` (classes, dim) and
    `bias` (classes)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SslabError(f"head file not found: {path}")
    state = load_weights(path)
    w, b = state.get("weight"), state.get("bias")
    if w is None or b is None or w.ndim != 2 or b.shape != (w.shape[0],):
        raise SslabError(f"{path} does not hold a linear classifier (tensors weight (classes, dim) and bias (classes)"
                         f"; it holds {', '.join(sorted(state)) or 'nothing'})")
    if w.shape[1] != dim:
        raise SslabError(f"{path}: a classifier on {w.shape[1]} features; this run's encoder gives {dim}")
    linear = nn.Linear(w.shape[1], w.shape[0])
    linear.load_state_dict({"weight": w.float(), "bias": b.float()})
    return linear.eval()


def _save_tokenizer(info: dict, tmp: Path) -> None:
    """A text export carries the run's tokenizer (tokenizer/): the ids it takes are that tokenizer's."""
    if info.get("kind") != "text":
        return
    tok_dir = Path(info["run_dir"]) / info.get("tokenizer", "tokenizer")
    if (tok_dir / "tokenizer.json").is_file():
        from sslab.methods.text import load_tokenizer

        load_tokenizer(tok_dir).save_pretrained(str(tmp / "tokenizer"))


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SslabError(f"--out {out} is a file; an export is a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / SIDECAR).is_file():
        raise SslabError(f"--out {out} already holds files that are not an sslab export; choose another folder")


@contextlib.contextmanager
def _staged(out: Path):
    """A temp folder beside `out` that becomes `out` (replacing an earlier export) once everything in it is written
    and synced; removed on any failure, so `out` is the old export or the new one, never half of one."""
    made = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as err:
        raise SslabError(f"cannot write to {out.parent}: {err.strerror or err}") from None
    old = None
    try:
        yield tmp
        for p in tmp.rglob("*"):
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        if out.exists():
            old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old.", suffix=".tmp"))
            os.replace(out, old / "export")
        os.replace(tmp, out)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old / "export", out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        for p in made:  # folders this export created, now empty
            with contextlib.suppress(OSError):
                p.rmdir()
        if isinstance(err, OSError):
            raise SslabError(f"cannot write the export to {out}: {err.strerror or err}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _quiet_transformers():
    import transformers as tf

    level = tf.utils.logging.get_verbosity()
    tf.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        tf.utils.logging.set_verbosity(level)


@contextlib.contextmanager
def _quiet_stdout():
    """Standard output silenced at the file-descriptor level (the ONNX exporter's C++ writes there)."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no file descriptor 1 to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _floats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.flatten()]


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def read_classifier(run_dir: str | Path, path: str | Path) -> tuple[nn.Module, nn.Linear, dict, dict]:
    """(encoder, head, the model's description, the run's info) of a kept model file on the run's encoder; a
    one-line SslabError for a missing file, one that is not safetensors, or weights that do not fit the run."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SslabError(f"model file not found: {path}")
    state, about = load_weights_metadata(path)
    w, b = state.get("head.weight"), state.get("head.bias")
    enc_state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    if w is None or b is None or not enc_state or w.ndim != 2 or b.shape != (w.shape[0],):
        held = ", ".join(sorted(state)[:4]) + (", ..." if len(state) > 4 else "") if state else "nothing"
        raise SslabError(f"{path} is not a fine-tuned classifier (tensors encoder.* and head.weight, head.bias, as "
                         f"sslab evaluate --save-model writes; it holds {held})")
    encoder, info = load_encoder(run_dir)
    own = encoder.state_dict()
    missing, extra = own.keys() - enc_state.keys(), enc_state.keys() - own.keys()
    wrong = [k for k in own.keys() & enc_state.keys() if own[k].shape != enc_state[k].shape]
    if missing or extra or wrong:
        eg = (f"{wrong[0]} is {tuple(enc_state[wrong[0]].shape)}, the run's {tuple(own[wrong[0]].shape)}" if wrong
              else f"e.g. {sorted(missing or extra)[0]}")
        raise SslabError(f"{path} does not fit this run's {info.get('backbone')} encoder ({len(missing)} weights "
                         f"missing, {len(extra)} unexpected, {len(wrong)} of another shape; {eg})")
    if w.shape[1] != encoder.dim:
        raise SslabError(f"{path}: a head on {w.shape[1]} features; this run's encoder gives {encoder.dim}")
    encoder.load_state_dict(enc_state)
    head = nn.Linear(w.shape[1], w.shape[0])
    head.load_state_dict({"weight": w.float(), "bias": b.float()})
    if isinstance(about.get("classes"), list) and len(about["classes"]) != w.shape[0]:
        about.pop("classes")  # a description that does not match the weights is not passed on
    return encoder.eval(), head.eval(), about, info


def load_classifier(run_dir: str | Path, path: str | Path) -> tuple[nn.Module, dict]:
    """A kept fine-tuned model (`sslab evaluate --save-model`) of the run in `run_dir`, in eval mode: a module from
    a raw batch of the run's data kind to class scores, and its description (protocol, fraction, seed, accuracy,
    `classes`: the name of each score)."""
    encoder, head, about, _ = read_classifier(run_dir, path)
    return nn.Sequential(encoder, head).eval(), about


__all__ = ["FORMATS", "SIDECAR", "export_run", "load_classifier", "wrap", "example_inputs", "timm_spec", "onnx_opset"]
