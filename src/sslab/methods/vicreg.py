"""VICReg (Bardes et al. 2022): invariance between views, variance and decorrelation within each view."""
from sslab.heads import mlp
from sslab.losses import VICRegLoss
from sslab.methods import register
from sslab.methods.base import JointEmbedding


@register("vicreg")
class VICReg(JointEmbedding):
    def __init__(self, backbone, proj_dim: int = 512, hidden_dim: int = 512, **loss_weights):
        """`loss_weights`: VICRegLoss's sim_weight, var_weight and cov_weight (its defaults: the paper's)."""
        super().__init__()
        self.backbone = backbone
        self.projector = mlp([backbone.dim, hidden_dim, hidden_dim, proj_dim])
        self.loss = VICRegLoss(**loss_weights)

    def forward(self, x1, x2):
        return self.loss(self.projector(self.backbone(x1)), self.projector(self.backbone(x2)))
