"""SimCLR (Chen et al. 2020): pull two views of an image together, push all other images apart."""
from sslab.heads import mlp
from sslab.losses import NTXentLoss
from sslab.methods import register
from sslab.methods.base import JointEmbedding


@register("simclr")
class SimCLR(JointEmbedding):
    def __init__(self, backbone, proj_dim: int = 128, hidden_dim: int = 512, temperature: float = 0.2):
        super().__init__()
        self.backbone = backbone
        self.projector = mlp([backbone.dim, hidden_dim, proj_dim])
        self.loss = NTXentLoss(temperature)

    def forward(self, x1, x2):
        return self.loss(self.projector(self.backbone(x1)), self.projector(self.backbone(x2)))
