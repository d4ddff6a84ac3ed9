"""Barlow Twins (Zbontar et al. 2021): make the cross-correlation of the two views' projections the identity."""
from sslab.heads import mlp
from sslab.losses import BarlowTwinsLoss
from sslab.methods import register
from sslab.methods.base import JointEmbedding


@register("barlow-twins")
class BarlowTwins(JointEmbedding):
    def __init__(self, backbone, proj_dim: int = 512, hidden_dim: int = 512, lambd: float = 5e-3):
        super().__init__()
        self.backbone = backbone
        self.projector = mlp([backbone.dim, hidden_dim, hidden_dim, proj_dim])
        self.loss = BarlowTwinsLoss(lambd)

    def forward(self, x1, x2):
        return self.loss(self.projector(self.backbone(x1)), self.projector(self.backbone(x2)))
