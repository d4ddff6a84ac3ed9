"""Measurements any layer may take on embeddings: retrieval recall@K between paired images and captions (what
CLIP's probe watches during pretraining and the retrieval protocol reports). Embedding health lives in
`sslab.health`."""
from __future__ import annotations

import torch

RECALL_AT = (1, 5, 10)


def recall_at_k(img: torch.Tensor, txt: torch.Tensor, owner: torch.Tensor, ks=RECALL_AT) -> dict:
    """Image-to-text R@K (an image's query succeeds when any of its captions is among the K nearest captions) and
    text-to-image R@K (a caption's image among the K nearest images), by cosine similarity."""
    sim = img @ txt.T  # (N, M)
    out = {}
    # rank of the best-ranked own caption of each image
    own = owner.unsqueeze(0) == torch.arange(len(img), device=owner.device).unsqueeze(1)  # (N, M)
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
