"""What every method is: a plain `nn.Module` that owns its pretext views and returns its loss.

The engine calls, per step, `inputs = model.views(batch, generator)` (the raw batch of the data kind, on the
device) and then `model(*inputs)` (a tuple) or `model(**inputs)` (a dict), which returns the loss or a dict
`{"loss": ..., "<name>": value to log, ...}`. Every `log_every` steps it calls `model.probe(batch)` on a fixed
batch and logs what comes back (embedding health, held-out loss, masked-token accuracy, ...). Outside the
engine a method is used as any module: `loss = model(v1, v2)`.

`JointEmbedding` is the family of the image methods (SimCLR, BYOL, VICReg, ...): two (or more) augmented views
through a backbone and a projector; `sslab.methods.text` holds the language-model family.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from sslab.atomic import atomic_write
from sslab.checkpoint import load_weights
from sslab.errors import SslabError
from sslab.health import alignment, collapse_status, embedding_health, uniformity
from sslab.nets import build_backbone, check_backbone_name
from sslab.nets.image import is_vit
from sslab.views import image as image_views

SEVERITY = {"ok": 0, "warning": 1, "collapsed": 2}


@dataclass
class Prepared:
    """What a method pretrains on: `train` (a data kind's split or a derived one, e.g. token blocks), `val`
    (held-out items for the probe, or None), and `after(load, info) -> dict`: extra results for the report once
    pretraining is done (e.g. sample generations), where `load()` gives the pretrained method in eval mode."""
    train: Any
    val: Any = None
    after: Callable[[Callable[[], Any], dict], dict] = field(default=lambda load, info: {})


def saved_run(meta: dict, marker: str = "backbone.safetensors") -> bool:
    """Whether `meta` describes a run already saved (its `run_dir` holds `marker`): its networks are rebuilt as
    architectures and their own weights loaded next, so a pretrained starting point is not read again (nor needed)."""
    run_dir = meta.get("run_dir")
    return bool(run_dir) and (Path(run_dir) / marker).exists()


START_RUN = "start_run.json"  # the architecture of the sslab run an image network started from, kept in the run
ARCHITECTURE = ("backbone", "in_chans", "mean", "std", "foundation_image_size", "image_size")


def _run_architecture(folder: Path) -> dict:
    """What rebuilds the image network of the sslab run in `folder` (following runs that started from runs)."""
    try:
        info = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        raise SslabError(f"--backbone {folder}: no readable run.json") from None
    kept, inner = folder / START_RUN, Path(str(info.get("backbone", "")))
    if kept.is_file():
        arch = json.loads(kept.read_text())
    elif (inner / "run.json").is_file():
        arch = _run_architecture(inner)
    else:
        arch = {k: info.get(k) for k in ARCHITECTURE}
    return {**arch, "kind": info.get("kind", "image")}


def _build(arch: dict) -> nn.Module:
    """The network an ARCHITECTURE record describes, with random weights."""
    return build_backbone(arch["backbone"], arch["in_chans"], arch["mean"], arch["std"],
                          arch.get("foundation_image_size"), load=False, image_size=arch.get("image_size"))


def image_backbone(backbone: str, meta: dict) -> nn.Module:
    """A method's image network (`build_backbone`), where `backbone` may also be an earlier sslab run: a folder with
    run.json and backbone.safetensors from an image SSL run (continued pretraining; a CLIP image tower that starts
    from SSL) or a CLIP run (its image tower). The run's architecture is kept in this run's folder (START_RUN), so a
    saved run rebuilds without the folder it started from."""
    own = Path(meta["run_dir"]) / START_RUN if meta.get("run_dir") else None
    if saved_run(meta) and own is not None and own.is_file():  # a saved run: the architecture; its weights next
        return _build(json.loads(own.read_text()))
    folder = Path(backbone).expanduser()
    if not (folder / "run.json").is_file():
        return build_backbone(backbone, meta["in_chans"], meta["mean"], meta["std"], meta.get("foundation_image_size"),
                              load=not saved_run(meta), image_size=meta.get("image_size"))
    arch = _run_architecture(folder)
    if arch["kind"] not in ("image", "pairs"):
        raise SslabError(f"--backbone {backbone}: a run on {arch['kind']} data has no image network")
    if arch["in_chans"] != meta["in_chans"]:
        raise SslabError(f"--backbone {backbone}: that run's network takes {arch['in_chans']}-channel images, this "
                         f"data has {meta['in_chans']}")
    net = _build(arch)
    state = load_weights(folder / "backbone.safetensors")
    if arch["kind"] == "pairs":  # a CLIP run holds both towers: its image tower
        state = {k[len("image_tower."):]: v for k, v in state.items() if k.startswith("image_tower.")}
    try:
        net.load_state_dict(state)
    except RuntimeError:
        raise SslabError(f"--backbone {backbone}: backbone.safetensors does not fit the {arch['backbone']} network "
                         "its run.json names") from None
    if own is not None:
        atomic_write(own, json.dumps({k: arch.get(k) for k in ARCHITECTURE}).encode())
    return net


class Energy:
    """A method that scores pairs of images: `energy(x, y)` per pair, low for compatible (two views of one thing).
    `energy_note` says what the number is when it is not 1 - the cosine similarity of the method's projections."""
    energy_note: str | None = None

    def energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Generator:
    """A method that writes text: `generate_text(tokenizer, prompt, new_tokens, temperature, top_k, seed)`."""

    def generate_text(self, tok, prompt: str, new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                      seed: int = 0) -> str:
        raise NotImplementedError


class Reconstructor:
    """A method that fills in masked images: `reconstruct(images, generator)` -> {"loss", "masked", ...}."""

    def reconstruct(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        raise NotImplementedError


class PairEncoder:
    """A method with two towers in one space (`net.encode_images`, `net.encode_texts`, and `encode_captions` from
    text): retrieval and zero-shot."""

    net: nn.Module

    def encode_captions(self, tok, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError


class Method(nn.Module):
    """Subclasses implement `forward(...) -> loss | {"loss": ..., ...}` and `encoder()` (the network used for
    transfer, taking a raw batch of the data kind); they may override `views`, `probe`, `after_step` (called after
    each optimiser step with progress in [0, 1]), `optim_groups` and `configure_optimizer`. `build_net(backbone, meta)` builds the network
    the method is constructed around from the data kind's description `meta` (see `sslab.methods.build_for_data`),
    and `setup(meta, cfg)` gives the method what its views need to know about the data."""

    kind: str = "image"  # the data kind the method trains on
    holds_out: bool = False  # with cfg.early_stop, prepare() holds out part of the training data (Prepared.val)
    select: tuple[str, str] = ("val_loss", "min")  # what early_stop picks the weights by: a probe value, min or max

    @classmethod
    def build_net(cls, backbone: str, meta: dict) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def check_backbone(cls, backbone: str) -> None:
        """The one-line SslabError `build_net` would raise for an unknown backbone name, without building."""

    @classmethod
    def prepare(cls, splits, cfg: Any, out) -> Prepared:
        """Turn loaded data splits into what this method pretrains on (labels unused); may write to the run
        folder `out` (a tokenizer, a token stream). Default: the training split as it is."""
        return Prepared(splits.train)

    def setup(self, meta: dict, cfg: Any) -> None:
        """Prepare the pretext views for data described by `meta` (sizes, channels, tokenizer ids) and the
        pretraining settings `cfg`."""

    def views(self, batch: Any, generator: torch.Generator | None = None) -> tuple | dict:
        """The model inputs made from one raw batch: augmented views, masks, collated text, ..."""
        return (batch,)

    def after_step(self, progress: float) -> None:
        pass

    def export(self, out) -> None:
        """Write what the run folder should hold besides sslab's own files (e.g. the model in HF format);
        called by process 0 at every checkpoint."""

    @torch.no_grad()
    def probe(self, batch: Any) -> dict:
        """Values to log, computed on a fixed batch in eval mode. A `"collapse"` entry ("ok", "warning",
        "collapsed") with a `"collapse_detail"` text feeds the engine's collapse guard."""
        return {}

    def encoder(self) -> nn.Module:
        """The representation used for transfer: a module mapping a raw batch to features (B, dim) with `.dim`."""
        raise NotImplementedError

    def configure_optimizer(self, cfg: Any) -> torch.optim.Optimizer:
        """The optimiser the engine steps (it sets each group's "lr" by its schedule): AdamW over `optim_groups`
        with the pretraining settings' lr and betas. A method may choose another (word vectors: Adagrad)."""
        groups = self.optim_groups(cfg.weight_decay)
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused_ok(groups))

    def optim_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: weight decay on matrices and kernels, none on biases, norms and embeddings'
        1-D parameters (as nanoGPT and BYOL/SimCLR's LARS exclusions do)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
                {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def crop_only_views(method: str, meta: dict, default_scale: tuple, cfg: Any) -> image_views.Augment:
    """The views of a method whose only image augmentation is a random crop and a flip (CLIP, MAE): the crop's area
    range is `pretrain.crop_scale` when set, else the method's own; `aug_strength` scales colour jitter, which such a
    method has none of, so any value but the default is an error before pretraining rather than silently ignored (a
    saved run is rebuilt as it was)."""
    if getattr(cfg, "aug_strength", 1.0) != 1.0 and not saved_run(meta):
        raise SslabError(f"{method}'s image views are a random crop and a flip only: aug_strength (colour jitter) "
                         "does not apply; set pretrain.crop_scale instead")
    scale = tuple(cfg.crop_scale) if getattr(cfg, "crop_scale", None) is not None else tuple(default_scale)
    return image_views.Augment(image_views.AugmentConfig(meta["image_size"], scale=scale, jitter_p=0.0, gray_p=0.0))


def fused_ok(groups: list[dict]) -> bool | None:
    """True when PyTorch's fused AdamW kernel can take every parameter (floating point, on the CPU or a CUDA
    device), else None (PyTorch's default, foreach). Measured on the character-level GPT (4 x 128, batch 8 x 64,
    2 threads): the optimiser step takes 2.6 ms fused against 11.0 ms foreach, 77 against 85 ms for the whole step."""
    params = [p for g in groups for p in g["params"]]
    return True if params and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) else None


class ImageEncoder(nn.Module):
    """A backbone fed raw uint8 image batches (B, H, W, C): what the transfer protocols call on images."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone, self.dim = backbone, backbone.dim

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw uint8 (B, H, W, C) images, or float (B, C, H, W) ones already converted (and augmented)."""
        if batch.dtype == torch.uint8:
            batch = image_views.to_float(batch, batch.device, channels_last=True)
        return self.backbone(batch)


class JointEmbedding(Method, Energy):
    """Subclasses set `self.backbone` and `self.projector` and implement `forward(x1, x2) -> loss` (multi-crop
    methods: `forward(*views)`, global views first, and they must also accept just two views)."""

    backbone: nn.Module
    projector: nn.Module
    num_local_crops: int = 0  # multi-crop: 2 global views + this many local (small) views
    local_crop_size: int | None = None  # side of the local views; None: ~3/7 of the image side
    # the collapse diagnosis also checks the projector's outputs (not only backbone features): set by the
    # predictive methods (BYOL, SimSiam) whose known failure -- every projection the same -- shows there first.
    # Off elsewhere: DINO's head emits logits with a large shared component, and on digits eval-mode projections
    # of SwAV / MoCo read as squeezed early in healthy runs.
    check_projection: bool = False
    run_evaluations = ("energy",)  # the energy of compatible / incompatible held-out pairs, in the log and report

    @classmethod
    def build_net(cls, backbone: str, meta: dict) -> nn.Module:
        return image_backbone(backbone, meta)

    @classmethod
    def check_backbone(cls, backbone: str) -> None:
        check_backbone_name(backbone)

    def view_configs(self, base: image_views.AugmentConfig) -> list[image_views.AugmentConfig]:
        """One augmentation recipe per view; the same one twice by default (BYOL overrides: asymmetric views)."""
        return [base, base]

    def setup(self, meta: dict, cfg: Any) -> None:
        size, chans = meta["image_size"], meta["in_chans"]
        base = image_views.simclr_config(size, cfg.aug_strength, chans)
        if cfg.crop_scale is not None:
            base = replace(base, scale=tuple(cfg.crop_scale))
        augs = [image_views.Augment(c) for c in self.view_configs(base)]
        if self.num_local_crops:  # multi-crop: small local views (SwAV, DINO)
            local = replace(base, size=self.local_crop_size or max(8, round(size * 3 / 7)), scale=(0.05, 0.4))
            augs += [image_views.Augment(local)] * self.num_local_crops
        self.channels_last = cfg.channels_last
        self._augs = augs  # a plain list: no parameters, nothing in the state dict

    def views(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        x = image_views.to_float(batch, batch.device, getattr(self, "channels_last", False))
        return image_views.multi_views(self._augs, x, generator)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Representation used for transfer: backbone features (before the projector), of float images."""
        return self.backbone(x)

    def encoder(self) -> nn.Module:
        return ImageEncoder(self.backbone)

    @torch.no_grad()
    def probe(self, batch: torch.Tensor) -> dict:
        """Embedding health of the backbone features (and projections where `check_projection`), alignment of
        two fixed augmented views (their own generator: the training streams are untouched) and uniformity."""
        x = image_views.to_float(batch, batch.device)
        g = torch.Generator(device=x.device).manual_seed(12345)
        v1, v2 = self._augs[0](x[:256], g), self._augs[0](x[:256], g)
        z = self.embed(x)
        h = embedding_health(z)
        row = {"emb_std": h["std_mean"], "eff_rank": h["effective_rank"],
               "align": alignment(self.embed(v1), self.embed(v2)), "uniform": uniformity(z)}
        statuses = [(collapse_status(h), h, "embedding")]
        if self.check_projection:
            hp = embedding_health(self.projector(z))
            row["proj_std"], row["proj_rank"] = hp["std_mean"], hp["effective_rank"]
            statuses.append((collapse_status(hp), hp, "projection"))
        status, hs, where = max(statuses, key=lambda t: SEVERITY[t[0]])
        row["collapse"] = status
        row["collapse_detail"] = (f"{where} effective rank {hs['effective_rank']:.2f} of {hs['dim']}, "
                                  f"std {hs['std_mean']:.4g} (ideal {hs['std_ideal']:.4g})")
        return row

    @torch.no_grad()
    def energy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Compatibility energy of each pair (x_i, y_i): 1 - cosine of their projections, in [0, 2];
        low means compatible (two views of one thing), 0 = same direction, 2 = opposite. Every method is an
        energy-based model over pairs, and its family decides how the energy landscape is shaped:

        * contrastive (SimCLR, MoCo v2/v3): pushed down for positive pairs and explicitly up for negatives
          (the other images of the batch / the queue), so unrelated images sit at high energy;
        * self-distillation / predictive (BYOL, SimSiam, DINO): pushed down for positives only (through a
          predictor or a sharpened teacher); collapse -- energy 0 everywhere -- is prevented by architecture
          (predictor, stop-gradient, momentum target, centring), not by negatives, so unrelated images are
          merely "not pushed down" and their energies are less spread;
        * regularised / information-maximising (Barlow Twins, VICReg): pushed down for positives while a
          variance / decorrelation term keeps the projections spread over all dimensions;
        * clustering (SwAV): compatible pairs share cluster assignments; the equipartition constraint keeps
          clusters in use. Here the energy is read on its projection (before the prototypes).

        Under eval-mode BatchNorm; values are comparable within one run, not across runs or methods."""
        return 1 - F.cosine_similarity(self.projector(self.backbone(x)), self.projector(self.backbone(y)), dim=1)


def token_predictor(in_dim: int, dim: int, depth: int, heads: int, patches: int, out_dim: int) -> tuple:
    """The narrow transformer MAE decodes with and I-JEPA predicts with: (embed: in_dim -> dim, the mask token, the
    learnt positions of `patches` tokens, `depth` timm blocks, a final norm, out: dim -> out_dim), the token and
    positions initialised as both papers' code does (normal and truncated normal, std 0.02)."""
    from timm.models.vision_transformer import Block

    embed = nn.Linear(in_dim, dim)
    mask_token = nn.Parameter(torch.zeros(1, 1, dim))
    pos = nn.Parameter(torch.zeros(1, patches, dim))
    blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(depth)])
    norm, out = nn.LayerNorm(dim), nn.Linear(dim, out_dim)
    nn.init.normal_(mask_token, std=0.02)
    nn.init.trunc_normal_(pos, std=0.02)
    return embed, mask_token, pos, blocks, norm, out


class ViTMethod(Method):
    """Image methods built from a Vision Transformer's parts (MAE, I-JEPA): they need a ViT backbone, and their
    AdamW groups spare biases, norms, position embeddings and learnt tokens (`no_decay`) from weight decay."""

    kind = "image"
    tiny_backbone = "vit-tiny"
    no_decay: tuple[str, ...] = ("pos_embed", "cls_token", "mask_token")

    @classmethod
    def check_backbone(cls, backbone: str) -> None:
        check_backbone_name(backbone)
        if not is_vit(backbone) and "/" not in backbone:  # an sslab run folder is checked when it is built
            raise SslabError(f"{cls.__name__.lower()} needs a Vision Transformer backbone (vit-tiny, vit-small, ...), "
                             f"got {backbone!r}")

    @classmethod
    def build_net(cls, backbone: str, meta: dict) -> nn.Module:
        return image_backbone(backbone, meta)

    def vit(self, backbone: nn.Module) -> nn.Module:
        """The timm VisionTransformer inside `backbone`, or a one-line error."""
        vit = getattr(backbone, "net", None)
        if not all(hasattr(vit, a) for a in ("patch_embed", "pos_embed", "blocks")):
            raise SslabError(f"{type(self).__name__.lower()} needs a Vision Transformer backbone (--backbone "
                             "vit-tiny, vit-small, ...)")
        return vit

    @staticmethod
    def encode_tokens(backbone: nn.Module, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The ViT of `backbone` on the patches `keep` (B, K) only (None: every patch), after its final norm:
        (B, prefix + K, dim), the class token (if any) first. With every patch kept, the mean of the patch tokens is
        the backbone's own features."""
        vit = backbone.net
        t = vit.patch_embed((images - backbone.mean) / backbone.std)
        t = t + vit.pos_embed[:, vit.num_prefix_tokens:]
        if keep is not None:
            t = t.gather(1, keep.unsqueeze(-1).expand(-1, -1, t.shape[-1]))
        if vit.num_prefix_tokens:
            t = torch.cat([(vit.cls_token + vit.pos_embed[:, :1]).expand(len(t), -1, -1), t], dim=1)
        return vit.norm(vit.blocks(vit.norm_pre(t)))

    def optim_groups(self, weight_decay: float) -> list[dict]:
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        decays = [p.ndim > 1 and not n.endswith(self.no_decay) for n, p in named]
        return [{"params": [p for (_, p), d in zip(named, decays) if d], "weight_decay": weight_decay},
                {"params": [p for (_, p), d in zip(named, decays) if not d], "weight_decay": 0.0}]
