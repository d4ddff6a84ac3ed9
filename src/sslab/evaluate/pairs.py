"""What the harness measures on image-text pairs: retrieval in both directions on held-out pairs (Recall@K, the
way CLIP and open_clip report Flickr and COCO), against chance."""
from __future__ import annotations

import torch

from sslab.views import image as image_views

RECALL_AT = (1, 5, 10)


@torch.no_grad()
def embed_pairs(net, data, device="cpu", batch: int = 256):
    """Shared-space embeddings of every image and every caption of `data` (a `PairTokens`): (images (N, E),
    captions (M, E), image index of each caption (M,), the caption's row in the pair data (M,)); images
    unaugmented, in eval mode."""
    net.eval()
    imgs, txts, owner, rows = [], [], [], []
    for i in range(0, len(data), batch):
        b = data.batch(torch.arange(i, min(i + batch, len(data))))
        x = image_views.to_float(b["images"].to(device), device)
        imgs.append(net.encode_images(x).float().cpu())
        for slot in range(b["captions"].shape[1]):
            keep = b["n_captions"] > slot
            if not bool(keep.any()):
                break
            ids, mask = b["captions"][keep, slot].to(device), b["caption_mask"][keep, slot].to(device)
            width = max(1, int(mask.sum(1).max()))
            txts.append(net.encode_texts(ids[:, :width], mask[:, :width]).float().cpu())
            owner.append(torch.arange(i, i + len(keep))[keep])
            rows.append(data.caption_index[i : i + len(keep), slot][keep])
    return torch.cat(imgs), torch.cat(txts), torch.cat(owner), torch.cat(rows)


def recall_at_k(img: torch.Tensor, txt: torch.Tensor, owner: torch.Tensor, ks=RECALL_AT) -> dict:
    """Image-to-text R@K (an image's query succeeds when any of its captions is among the K nearest captions) and
    text-to-image R@K (a caption's image among the K nearest images), by cosine similarity."""
    sim = img @ txt.T  # (N, M)
    out = {}
    # rank of the best-ranked own caption of each image
    own = owner.unsqueeze(0) == torch.arange(len(img)).unsqueeze(1)  # (N, M)
    best_own = sim.masked_fill(~own, float("-inf")).max(1).values
    # other items scored at least as high as the right one (ties count against: a collapsed model scores 0)
    i2t_rank = ((sim >= best_own.unsqueeze(1)) & ~own).sum(1)
    t2i_rank = ((sim.T >= sim.T.gather(1, owner.unsqueeze(1))) & ~own.T).sum(1)
    for k in ks:
        out[f"i2t_r{k}"] = float((i2t_rank < k).float().mean())
        out[f"t2i_r{k}"] = float((t2i_rank < k).float().mean())
    out["images"], out["captions"] = int(len(img)), int(len(txt))
    out["chance"] = {f"r{k}": min(1.0, k / len(img)) for k in ks}  # a random ranking, either direction (~k/N)
    return out


def retrieval_lines(r: dict) -> list[str]:
    ks = [k for k in RECALL_AT if f"i2t_r{k}" in r]
    fmt = lambda d: " / ".join(f"{r[f'{d}_r{k}']:.1%}" for k in ks)  # noqa: E731
    chance = " / ".join(f"{r['chance'][f'r{k}']:.1%}" for k in ks)
    at = "/".join(map(str, ks))
    return [f"image -> text R@{at}: {fmt('i2t')} ({r['images']} images, {r['captions']} captions)",
            f"text -> image R@{at}: {fmt('t2i')}",
            f"chance R@{at}: {chance}"]


def run_retrieval(run_dir, info: dict, root=None, data: str | None = None, split: str = "test",
                  ks=RECALL_AT, examples: int = 0) -> dict:
    """Retrieval R@K of a CLIP run on the held-out (or training) pairs of its data set (or of `data`); with
    `examples` > 0 also "examples": the first images (uint8 arrays) with their top-3 captions, each marked
    whether it is one of the image's own."""
    from pathlib import Path

    from sslab.data import load_data
    from sslab.engine import load_method, read_run_info
    from sslab.errors import SslabError
    from sslab.methods.clip import PairTokens
    from sslab.methods.text import run_tokenizer

    if split not in ("test", "train"):
        raise SslabError(f"split must be test or train, got {split!r}")
    if read_run_info(run_dir).get("kind") != "pairs":
        raise SslabError(f"{run_dir} is a {read_run_info(run_dir).get('method')} run; retrieval needs an "
                         "image-text (clip) run")
    model, info = load_method(Path(run_dir))
    if not hasattr(getattr(model, "net", None), "encode_texts"):
        raise SslabError(f"{run_dir} is a {info.get('method')} run; retrieval needs an image-text (clip) run")
    splits = load_data(data or info["data"], root, kind="pairs")
    pairs = splits.test if split == "test" else splits.train
    if pairs is None or len(pairs) < 2:
        raise SslabError(f"{data or info['data']}: too few {split} images for retrieval")
    tokens = PairTokens(pairs, run_tokenizer(info), info["context"], info)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    img, txt, owner, rows = embed_pairs(model.net.to(device), tokens, device)
    out = recall_at_k(img, txt, owner, ks=ks)
    if examples:
        top = (img[:examples] @ txt.T).topk(min(3, len(txt)), dim=1)
        out["examples"] = [{"image": pairs.images[i], "truth": pairs.captions_of(i)[0],
                            "top": [(pairs.captions[int(rows[j])], bool(owner[j] == i), float(v))
                                    for v, j in zip(top.values[i].tolist(), top.indices[i].tolist())]}
                           for i in range(min(examples, len(img)))]
    return out


def retrieval_evaluation(run_dir, info: dict, root=None, examples: int = 0) -> dict:
    """The run evaluation "retrieval": R@K both ways on the held-out pairs, as lines for the log and the report
    (and, with `examples`, the first held-out images with their top-3 captions under "examples")."""
    values = run_retrieval(run_dir, info, root, examples=examples)
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
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, info = load_method(run_dir)
    tok, net = run_tokenizer(info), model.net.to(device)
    names = [class_text(c) for c in part.classes]
    enc = tok([p.format(n) for n in names for p in prompts], padding=True, truncation=True,
              max_length=info["context"], return_tensors="pt")
    t = net.encode_texts(enc["input_ids"].to(device), enc["attention_mask"].to(device))
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
