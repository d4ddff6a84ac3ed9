"""SimSiam (Chen & He 2021): a predictor maps one view's projection onto the other's, stop-gradient on the target,
no momentum encoder and no negatives. `stop_gradient=False` removes the stop-gradient (a known collapse, for tests
and demonstrations)."""
from sslab.heads import mlp
from sslab.losses import NegativeCosineLoss
from sslab.methods import register
from sslab.methods.base import JointEmbedding


@register("simsiam")
class SimSiam(JointEmbedding):
    check_projection = True  # collapse diagnosis also watches the projections

    def __init__(self, backbone, proj_dim: int = 512, hidden_dim: int = 512, pred_hidden_dim: int = 128,
                 stop_gradient: bool = True):
        super().__init__()
        self.backbone = backbone
        self.projector = mlp([backbone.dim, hidden_dim, hidden_dim, proj_dim], last_bn=True)
        self.predictor = mlp([proj_dim, pred_hidden_dim, proj_dim])
        self.loss = NegativeCosineLoss(stop_gradient)

    def forward(self, x1, x2):
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return (self.loss(p1, z2) + self.loss(p2, z1)) / 2
