"""SwAV (Caron et al. 2020): predict the Sinkhorn cluster codes of one global view from every other view
(multi-crop: 2 global + `local_crops` small views), with learnable L2-normalised prototypes."""
import torch
import torch.nn.functional as F
from torch import nn

from sslab.heads import KeyQueue, mlp, multicrop_forward
from sslab.losses import SwAVLoss
from sslab.methods import register
from sslab.methods.base import JointEmbedding


@register("swav")
class SwAV(JointEmbedding):
    def __init__(self, backbone, proj_dim: int = 128, hidden_dim: int = 512, num_prototypes: int = 300,
                 temperature: float = 0.1, epsilon: float = 0.05, sinkhorn_iters: int = 3,
                 freeze_prototypes_steps: int = 20, queue_size: int = 0, local_crops: int = 2,
                 local_crop_size: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.projector = mlp([backbone.dim, hidden_dim, proj_dim])
        self.prototypes = nn.Linear(proj_dim, num_prototypes, bias=False)
        self.loss = SwAVLoss(temperature, epsilon, sinkhorn_iters)
        self.freeze_prototypes_steps = freeze_prototypes_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.queues = nn.ModuleList([KeyQueue(queue_size, proj_dim, random_init=False) for _ in range(2)]
                                    if queue_size > 0 else [])
        self.num_local_crops, self.local_crop_size = local_crops, local_crop_size

    def forward(self, *views):
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        w = self.prototypes.weight
        if int(self.steps) < self.freeze_prototypes_steps:  # frozen: a zero gradient (still in the graph for DDP)
            w = w.clone()
            w.register_hook(torch.zeros_like)
        z = [F.normalize(o, dim=1) for o in multicrop_forward(nn.Sequential(self.backbone, self.projector), views)]
        scores = [zi @ w.T for zi in z]
        extra = [q.keys @ w.detach().T for q in self.queues] if self.queues and all(q.full for q in self.queues) else None
        loss = self.loss(scores, min(2, len(views)), extra)
        if self.training:
            for q, zi in zip(self.queues, z):
                q.push(zi)
        return loss

    def after_step(self, progress):
        self.steps += 1
