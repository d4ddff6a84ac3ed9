"""What the harness measures on image-text pairs: retrieval in both directions on held-out pairs (Recall@K, the
way CLIP and open_clip report Flickr and COCO), against chance."""
from __future__ import annotations

import torch

from sslab.health import embedding_health
from sslab.views import image as image_views
from sslab.dist import default_device
from sslab.metrics import RECALL_AT, recall_at_k
from sslab.methods.clip import embed_batch


@torch.no_grad()
def embed_pairs(net, data, device="cpu", batch: int = 256):
    """Shared-space embeddings of every image and every caption of `data` (a `PairTokens`): (images (N, E),
    captions (M, E), image index of each caption (M,), the caption's row in the pair data (M,)); images
    unaugmented, in eval mode."""
    net.eval()
    imgs, txts, owner, rows = [], [], [], []
    for i in range(0, len(data), batch):
        b = data.batch(torch.arange(i, min(i + batch, len(data))))
        img, txt, own, slots = embed_batch(net, {k: v.to(device) for k, v in b.items()})
        imgs.append(img.float().cpu())
        txts.append(txt.float().cpu())
        owner.append(own.cpu() + i)
        rows.append(data.caption_index[i + own.cpu(), slots.cpu()])
    return torch.cat(imgs), torch.cat(txts), torch.cat(owner), torch.cat(rows)


def retrieval_lines(r: dict) -> list[str]:
    ks = [k for k in RECALL_AT if f"i2t_r{k}" in r]
    fmt = lambda d: " / ".join(f"{r[f'{d}_r{k}']:.1%}" for k in ks)  # noqa: E731
    chance = " / ".join(f"{r['chance'][f'r{k}']:.1%}" for k in ks)
    at = "/".join(map(str, ks))
    lines = [f"image -> text R@{at}: {fmt('i2t')} ({r['images']} images, {r['captions']} captions)",
             f"text -> image R@{at}: {fmt('t2i')}",
             f"chance R@{at}: {chance}"]
    if "health" in r:
        h = r["health"]
        lines.append("health of both towers in the shared space: " + "; ".join(
            f"{t} effective rank {h[t]['effective_rank']:.1f} of {h[t]['dim']}, mean per-dim std "
            f"{h[t]['std_mean']:.3f} (ideal {h[t]['std_ideal']:.3f})" for t in ("image", "text"))
            + f"; modality gap {h['modality_gap']:.2f} (distance between the two towers' mean embeddings)")
    return lines


def tower_health(img: torch.Tensor, txt: torch.Tensor) -> dict:
    """Embedding health (`sslab.health.embedding_health`) of each tower's shared-space embeddings, and the modality
    gap (Liang et al. 2022): the distance between the mean image and the mean caption embedding (0 = the towers fill
    the same region; CLIP models typically keep a clear gap)."""
    return {"image": embedding_health(img), "text": embedding_health(txt),
            "modality_gap": float((img.mean(0) - txt.mean(0)).norm())}


def run_retrieval(run_dir, info: dict, root=None, data: str | None = None, split: str = "test",
                  ks=RECALL_AT, examples: int = 0, splits=None) -> dict:
    """Retrieval R@K of a CLIP run on the held-out (or training) pairs of its data set (or of `data`); with
    `examples` > 0 also "examples": the first images (uint8 arrays) with their top-3 captions, each marked
    whether it is one of the image's own."""
    from pathlib import Path

    from sslab.data import load_data
    from sslab.engine import load_method, read_run_info
    from sslab.errors import SslabError
    from sslab.data.pairs import PairTokens
    from sslab.methods.base import PairEncoder
    from sslab.methods.text import run_tokenizer

    if split not in ("test", "train"):
        raise SslabError(f"split must be test or train, got {split!r}")
    if read_run_info(run_dir).get("kind") != "pairs":
        raise SslabError(f"{run_dir} is a {read_run_info(run_dir).get('method')} run; retrieval needs an "
                         "image-text (clip) run")
    model, info = load_method(Path(run_dir))
    if not isinstance(model, PairEncoder):
        raise SslabError(f"{run_dir} is a {info.get('method')} run; retrieval needs an image-text (clip) run")
    if splits is None or data:  # `splits`: the run's pairs, loaded by the caller (a study)
        splits = load_data(data or info["data"], root, kind="pairs")
    pairs = splits.test if split == "test" else splits.train
    if pairs is None or len(pairs) < 2:
        raise SslabError(f"{data or info['data']}: too few {split} images for retrieval")
    tokens = PairTokens(pairs, run_tokenizer(info), info["context"], info)
    device = default_device()
    img, txt, owner, rows = embed_pairs(model.net.to(device), tokens, device)
    out = {**recall_at_k(img, txt, owner, ks=ks), "health": tower_health(img, txt)}
    if examples:
        top = (img[:examples] @ txt.T).topk(min(3, len(txt)), dim=1)
        out["examples"] = [{"image": pairs.images[i], "truth": pairs.captions_of(i)[0],
                            "top": [(pairs.captions[int(rows[j])], bool(owner[j] == i), float(v))
                                    for v, j in zip(top.values[i].tolist(), top.indices[i].tolist())]}
                           for i in range(min(examples, len(img)))]
    return out


def retrieval_evaluation(run_dir, info: dict, root=None, examples: int = 0, splits=None) -> dict:
    """The run evaluation "retrieval": R@K both ways on the held-out pairs, as lines for the log and the report
    (and, with `examples`, the first held-out images with their top-3 captions under "examples")."""
    values = run_retrieval(run_dir, info, root, examples=examples, splits=splits)
    shown = values.pop("examples", None)
    return {"title": "Retrieval on held-out pairs", "lines": retrieval_lines(values), "values": values,
            **({"examples": shown} if shown is not None else {})}


DEFAULT_PROMPTS = ("a photo of a {}.",)


def class_text(name: str) -> str:
    """A class name as words for a prompt ("sea_lion" -> "sea lion")."""
    return " ".join(str(name).replace("_", " ").replace("-", " ").split()) or str(name)


def check_prompts(prompts) -> list[str]:
    from sslab.errors import SslabError

    prompts = list(prompts) or list(DEFAULT_PROMPTS)
    for p in prompts:
        if not isinstance(p, str) or p.count("{}") != 1:
            raise SslabError(f"prompt {p!r} must hold one {{}} where the class name goes")
    return prompts


@torch.no_grad()
def zero_shot(run_dir, data, prompts=DEFAULT_PROMPTS, root=None, split: str = "test", limit: int | None = None,
              batch: int = 256) -> dict:
    """Zero-shot classification with a CLIP run on a labelled image set (a name or path, or loaded splits already
    at the run's side and RGB): each class is the average of its prompts' text embeddings (prompt ensembling,
    renormalised); an image takes the class nearest to its embedding. `limit`: a fixed random subset of the test
    images. Returns accuracy, chance (1 / classes) and the counts."""
    import numpy as np
    import torch.nn.functional as F

    from sslab.data import load_data
    from sslab.data.image import as_rgb
    from sslab.engine import load_method, read_run_info, to_device
    from sslab.errors import SslabError
    from sslab.methods.text import run_tokenizer

    info = read_run_info(run_dir)
    if info.get("kind") != "pairs":
        raise SslabError(f"{run_dir} is a {info.get('method')} run; zero-shot classification needs a clip run")
    prompts = check_prompts(prompts)
    splits = as_rgb(load_data(data, root, kind="image"), info["image_size"]) if isinstance(data, str) else data
    part = splits.test if split == "test" else splits.train
    name = data if isinstance(data, str) else getattr(splits.train, "name", "the probe data")
    if part is None or part.y is None:
        raise SslabError(f"{name}: zero-shot classification needs labelled images")
    if len(part.classes) < 2:
        raise SslabError(f"{name}: zero-shot classification needs at least 2 classes, found {len(part.classes)}")
    device = default_device()
    model, info = load_method(run_dir)
    net = model.to(device).net
    names = [class_text(c) for c in part.classes]
    t = model.encode_captions(run_tokenizer(info), [p.format(n) for n in names for p in prompts])
    t = F.normalize(t.view(len(names), len(prompts), -1).mean(1), dim=-1)
    idx = np.arange(len(part)) if limit is None or limit >= len(part) else \
        np.sort(np.random.default_rng(0).permutation(len(part))[:limit])
    correct = 0
    for i in range(0, len(idx), batch):
        b = idx[i : i + batch]
        x = image_views.to_float(to_device(torch.as_tensor(part.x[b]), device), device)
        pred = (net.encode_images(x) @ t.T).argmax(1).cpu()
        correct += int((pred == torch.as_tensor(part.y[b])).sum())
    return {"accuracy": correct / max(1, len(idx)), "chance": 1 / len(names), "images": int(len(idx)),
            "classes": len(names), "prompts": prompts}
