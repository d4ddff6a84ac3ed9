"""CLIP (Radford et al. 2021): an image tower and a text tower trained so that an image and its caption land close
in a shared space and apart from the other captions of the batch (`losses.CLIPLoss`, symmetric InfoNCE with a
learnt temperature clamped at 100 as CLIP does; SigLIP's sigmoid loss with `loss="siglip"`).

Image tower: any sslab image backbone (`--backbone resnet-s2`, `timm:<model>`, `torchvision:<arch>=<weights>`, or
an earlier sslab run: an image SSL run's backbone, a CLIP run's image tower).
Text tower: a small BERT-style Transformer (`text_size`, default tiny) on a WordPiece tokenizer trained on the
training captions, mean-pooled, or a pretrained local HF encoder (`text_from=<folder>`, with its own tokenizer).
The views are CLIP's: a random resized crop and flip of the image (no colour
distortion) and one of the image's captions drawn at random each time. `lock_image=True` freezes the image tower
(LiT, Zhai et al. 2022), `lock_text=True` the text tower. Transfer: `encoder()` is the image tower (the harness's probes on labelled images);
`encode_images` / `encode_texts` give the shared-space embeddings for retrieval and zero-shot classification."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sslab.data.pairs import PairTokens
from sslab.errors import SslabError
from sslab.health import embedding_health
from sslab.losses import CLIPLoss, SigLIPLoss
from sslab.metrics import RECALL_AT, recall_at_k
from sslab.methods import register
from sslab.methods.base import ImageEncoder, Method, PairEncoder, Prepared, crop_only_views, image_backbone, saved_run
from sslab.nets.image import check_backbone_name
from sslab.nets.text import TEXT_SIZES, build_text_model, load_hf_config, load_hf_encoder, pool
from sslab.views import image as image_views

TEXT_TOWER_DIR = "text_tower"  # a pretrained text tower's config, so the run rebuilds without its source folder
SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
VAL_FRACTION = 0.1  # with early_stop: the training images held out for the loss that picks the weights
MAX_LOGIT_SCALE = math.log(100.0)  # CLIP clips the learnt inverse temperature at 100


@torch.no_grad()
def embed_batch(net: "CLIPNet", b: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shared-space embeddings of a raw batch of pairs (`PairTokens.batch`): every image unaugmented (B, E) and
    every caption (M, E), with each caption's image (M,) and slot (M,) in the batch."""
    imgs = net.encode_images(image_views.to_float(b["images"], b["images"].device))
    txts, owner, slots = [], [], []
    for slot in range(b["captions"].shape[1]):
        keep = b["n_captions"] > slot
        if not bool(keep.any()):
            break
        ids, mask = b["captions"][keep, slot], b["caption_mask"][keep, slot]
        width = max(1, int(mask.sum(1).max()))
        txts.append(net.encode_texts(ids[:, :width], mask[:, :width]))
        owner.append(torch.nonzero(keep).flatten())
        slots.append(torch.full((int(keep.sum()),), slot, dtype=torch.long, device=keep.device))
    return imgs, torch.cat(txts), torch.cat(owner), torch.cat(slots)


class CLIPNet(nn.Module):
    """The two towers and their projections to the shared space (no bias, as CLIP), plus the learnt log inverse
    temperature (init log(1/0.07)) and, for SigLIP, a learnt bias (init -10, the paper's)."""

    def __init__(self, image_tower: nn.Module, text_tower: nn.Module, text_dim: int, embed_dim: int):
        super().__init__()
        self.image_tower, self.text_tower = image_tower, text_tower
        self.image_proj = nn.Linear(image_tower.dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_dim, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0))
        self.embed_dim = embed_dim

    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """Float images (B, C, H, W) -> L2-normalised embeddings (B, embed_dim)."""
        return F.normalize(self.image_proj(self.image_tower(x)), dim=-1)

    def encode_texts(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.text_tower(input_ids=ids, attention_mask=mask).last_hidden_state
        return F.normalize(self.text_proj(pool(h, mask, "mean")), dim=-1)


@register("clip")
class CLIP(Method, PairEncoder):
    kind = "pairs"
    default_context = 32  # Flickr8k captions: 12 words on average, the longest ~40 word pieces
    default_vocab = 4096
    tiny_backbone = "resnet-s2"
    holds_out = True  # early_stop: a tenth of the training images (VAL_FRACTION)
    # early_stop picks the weights by held-out retrieval: the held-out loss turns up long before retrieval stops
    # improving (Flickr8k-1k, resnet-s2: loss lowest at epoch 8, retrieval better at 28 than at 8)
    select = ("val_recall", "max")
    run_evaluations = ("retrieval",)  # R@1/5/10 both ways on the held-out pairs, in the log and the report

    def __init__(self, net: CLIPNet, loss: str = "clip", lock_image: bool = False, lock_text: bool = False,
                 text_size: str = "tiny", text_from: str | None = None, embed_dim: int = 128,
                 crop_scale: tuple = (0.5, 1.0)):
        super().__init__()
        if loss not in ("clip", "siglip"):
            raise SslabError(f"clip loss must be 'clip' or 'siglip', got {loss!r}")
        self.net, self.loss_name, self.lock_image = net, loss, bool(lock_image)
        self.crop_scale = tuple(crop_scale)
        self.criterion = CLIPLoss() if loss == "clip" else SigLIPLoss()
        net.logit_bias.requires_grad_(loss == "siglip")  # only SigLIP's loss has a bias
        self.locked = [t for t, locked in ((net.image_tower, lock_image), (net.text_tower, lock_text)) if locked]
        for tower in self.locked:  # LiT: a locked tower stays as it was given (its projection still learns)
            for p in tower.parameters():
                p.requires_grad_(False)
        if loss == "siglip":  # SigLIP's initial scale is 10 (CLIP's 1/0.07)
            with torch.no_grad():
                net.logit_scale.fill_(math.log(10.0))

    # ------------------------------------------------------------------ building
    @classmethod
    def check_backbone(cls, backbone: str) -> None:
        check_backbone_name(backbone)

    @classmethod
    def build_net(cls, backbone: str, meta: dict) -> CLIPNet:
        args = meta.get("method_args") or {}
        size = args.get("text_size", "tiny")
        if size not in TEXT_SIZES:
            raise SslabError(f"unknown clip text_size {size!r}; choose from {', '.join(TEXT_SIZES)}")
        embed = args.get("embed_dim", 128)
        if isinstance(embed, bool) or not isinstance(embed, int) or embed < 1:
            raise SslabError(f"clip embed_dim must be a positive integer, got {embed!r}")
        image = image_backbone(backbone, meta)
        if args.get("text_from"):  # a pretrained local HF text encoder (e.g. the MiniLM sentence encoder)
            own = Path(meta.get("run_dir") or ".") / TEXT_TOWER_DIR
            if saved_run(meta) and (own / "config.json").is_file():  # a saved run: the architecture, weights next
                import transformers as tf

                text = tf.AutoModel.from_config(load_hf_config(own))
            else:
                text = load_hf_encoder(args["text_from"])
            dim = text.config.hidden_size
        else:
            text = build_text_model("bert", size, meta["vocab_size"], meta["context"], meta["pad_id"]).bert
            dim = TEXT_SIZES[size]["hidden"]
        if getattr(text, "pooler", None) is not None:
            text.pooler = None  # mean pooling: a [CLS] pooler would get no gradient
        return CLIPNet(image, text, dim, embed)

    @classmethod
    def prepare(cls, splits, cfg: Any, out) -> Prepared:
        from sslab.data.tokenizers import train_tokenizer
        from sslab.methods.text import TOKENIZER_DIR, prepare_tokenizer, tokenizer_meta

        out = Path(out)
        context = cfg.context or cls.default_context
        tok_dir = out / TOKENIZER_DIR
        text_from = cfg.method_args.get("text_from")
        pretrained = Path(text_from).expanduser() if text_from else None
        config = load_hf_config(pretrained) if pretrained is not None and not (tok_dir / "tokenizer.json").is_file() \
            else None
        streamed = getattr(splits.train, "streamed", False)  # WebDataset shards: captions read from the shards
        tok = prepare_tokenizer(tok_dir, context, pretrained, config, what="the text tower", need_pad=True,
                                train=lambda: train_tokenizer(splits.train.read_captions() if streamed
                                                              else splits.train.captions, "wordpiece",
                                                              cfg.vocab_size or cls.default_vocab, SPECIALS,
                                                              lowercase=True))
        if config is not None:  # a pretrained text tower keeps its own tokenizer; its config is kept in the run
            config.save_pretrained(str(out / TEXT_TOWER_DIR))
        meta = {**splits.train.meta(limit=10000), **tokenizer_meta(tok, context, "wordpiece"), "kind": "pairs",
                "run_dir": str(out), "method_args": dict(cfg.method_args)}
        train = splits.train
        if streamed:  # captions tokenized as the shards are read; the probe's batch is the stream's fixed head
            if cfg.early_stop:
                raise SslabError("early_stop picks weights on held-out pairs, which streamed shards do not hold "
                                 "out: add early_stop=null (the clip recipe sets it for Flickr8k-1k's 720 images)")
            return Prepared(train.tokens(tok, context, meta), None)
        if cfg.early_stop:  # the held-out loss that picks the weights comes from training images, never the test's
            n_val = max(1, int(round(VAL_FRACTION * len(train))))
            if len(train) - n_val < 2:
                raise SslabError(f"early_stop holds out {n_val} of {len(train)} training images: too few left "
                                 "(pretrain.early_stop=null trains on them all for the whole budget)")
            order = np.random.default_rng(0).permutation(len(train))
            held, train = train.subset(np.sort(order[:n_val])), train.subset(np.sort(order[n_val:]))
            val = PairTokens(held, tok, context, meta)
            val.from_train = True
        else:  # the probe's held-out loss on the test pairs: watched, never used to choose anything
            val = PairTokens(splits.test, tok, context, meta) if splits.test is not None and len(splits.test) else None
        return Prepared(PairTokens(train, tok, context, meta), val)

    def setup(self, meta: dict, cfg: Any) -> None:
        self.meta = {k: v for k, v in meta.items() if k != "config"}
        # CLIP's only image augmentation: a random crop (and a flip)
        self._aug = crop_only_views("clip", meta, self.crop_scale, cfg)

    # ------------------------------------------------------------------ training
    def train(self, mode: bool = True):
        """Locked towers stay in eval mode: no BatchNorm statistics drift, no dropout."""
        super().train(mode)
        for tower in getattr(self, "locked", []):
            tower.eval()
        return self

    @torch.no_grad()
    def encode_captions(self, tok, texts: list[str]) -> torch.Tensor:
        """Shared-space embeddings (len(texts), E) of captions, tokenized as the run's captions were (its context),
        on the device the network is on."""
        enc = tok(list(texts), padding=True, truncation=True, max_length=self.meta["context"], return_tensors="pt")
        device = self.net.logit_scale.device
        return self.net.encode_texts(enc["input_ids"].to(device), enc["attention_mask"].to(device))

    def after_step(self, progress: float) -> None:
        with torch.no_grad():  # the clamp also holds between steps (checkpoints, energies)
            self.net.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

    def views(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        images = image_views.to_float(batch["images"], batch["images"].device)
        images = self._aug(images, generator)
        b = images.shape[0]
        r = torch.rand(b, generator=generator, device=images.device) if generator is not None else torch.rand(b)
        slot = (r.to(batch["n_captions"].device) * batch["n_captions"]).long().clamp(max=batch["captions"].shape[1] - 1)
        rows = torch.arange(b, device=slot.device)
        ids, mask = batch["captions"][rows, slot], batch["caption_mask"][rows, slot]
        width = max(1, int(mask.sum(1).max()))
        return {"images": images, "input_ids": ids[:, :width], "attention_mask": mask[:, :width]}

    def forward(self, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        with torch.no_grad():
            self.net.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        img = self.net.encode_images(images)
        txt = self.net.encode_texts(input_ids, attention_mask)
        if self.loss_name == "clip":
            loss = self.criterion(img, txt, self.net.logit_scale)
        else:
            loss = self.criterion(img, txt, self.net.logit_scale, self.net.logit_bias)
        with torch.no_grad():
            acc = ((img @ txt.T).argmax(1) == torch.arange(len(img), device=img.device)).float().mean()
        return {"loss": loss, "i2t_acc": acc, "temperature": 1 / self.net.logit_scale.detach().exp()}

    @torch.no_grad()
    def probe(self, batch: dict) -> dict:
        """Held-out loss and in-batch image-to-caption accuracy on a fixed batch (fixed views); retrieval among
        the batch's unaugmented images and all their captions (val_recall: the mean of R@1/5/10 both ways, what
        early_stop selects on); the effective rank of each tower's shared-space embeddings (`sslab.health`: the
        health of both towers through training). Prefixed val_."""
        g = torch.Generator(device=batch["images"].device).manual_seed(0)
        head = {k: v[:256] for k, v in batch.items()}
        views = self.views(head, g)
        out = {f"val_{k}": float(v) for k, v in self(**views).items() if k != "temperature"}
        img, txt, owner, _ = embed_batch(self.net, head)  # unaugmented, every caption
        r = recall_at_k(img, txt, owner)
        return {**out, "val_recall": sum(r[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in RECALL_AT) / (2 * len(RECALL_AT)),
                "val_image_rank": embedding_health(img)["effective_rank"],
                "val_text_rank": embedding_health(txt)["effective_rank"]}

    # ------------------------------------------------------------------ transfer
    @property
    def backbone(self) -> nn.Module:
        """Both towers, projections and temperature: what backbone.safetensors holds and retrieval needs."""
        return self.net

    def encoder(self) -> ImageEncoder:
        return ImageEncoder(self.net.image_tower)

