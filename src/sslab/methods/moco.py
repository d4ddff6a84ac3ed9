"""MoCo v2 (Chen et al. 2020) and v3 (Chen, Xie & He 2021): queries from the online network are matched to keys
from a momentum (EMA) key encoder; v2 draws negatives from a queue of past keys, v3 from the batch."""
import torch

from sslab.heads import KeyQueue, cosine_momentum, ema_update, mlp, momentum_copy
from sslab.losses import InfoNCELoss
from sslab.methods import register
from sslab.methods.base import JointEmbedding


class _Momentum(JointEmbedding):
    def __init__(self, backbone, projector, momentum: float, temperature: float):
        super().__init__()
        self.backbone, self.projector = backbone, projector
        self.target_backbone, self.target_projector = momentum_copy(backbone), momentum_copy(projector)
        self.base_momentum = momentum
        self.loss = InfoNCELoss(temperature)

    @torch.no_grad()
    def keys(self, x):
        return self.target_projector(self.target_backbone(x))

    def after_step(self, progress):
        m = cosine_momentum(progress, self.base_momentum)
        ema_update(self.backbone, self.target_backbone, m)
        ema_update(self.projector, self.target_projector, m)


@register("moco-v2")
class MoCoV2(_Momentum):
    def __init__(self, backbone, proj_dim: int = 128, hidden_dim: int = 512, queue_size: int = 4096,
                 momentum: float = 0.99, temperature: float = 0.2):
        super().__init__(backbone, mlp([backbone.dim, hidden_dim, proj_dim]), momentum, temperature)
        self.queue = KeyQueue(queue_size, proj_dim)

    def forward(self, x1, x2):
        q1, q2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        k1, k2 = self.keys(x1), self.keys(x2)
        negatives = self.queue.keys.clone()
        loss = (self.loss(q1, k2, negatives) + self.loss(q2, k1, negatives)) / 2
        if self.training:  # one view at a time: the queue then holds keys in global-batch order on every process
            self.queue.push(k1)
            self.queue.push(k2)
        return loss


@register("moco-v3")
class MoCoV3(_Momentum):
    def __init__(self, backbone, proj_dim: int = 128, hidden_dim: int = 512, momentum: float = 0.99,
                 temperature: float = 0.2):
        super().__init__(backbone, mlp([backbone.dim, hidden_dim, hidden_dim, proj_dim], last_bn=True), momentum,
                         temperature)
        self.predictor = mlp([proj_dim, hidden_dim, proj_dim])

    def forward(self, x1, x2):
        q1 = self.predictor(self.projector(self.backbone(x1)))
        q2 = self.predictor(self.projector(self.backbone(x2)))
        k1, k2 = self.keys(x1), self.keys(x2)
        return 2 * self.loss.temperature * (self.loss(q1, k2) + self.loss(q2, k1))
