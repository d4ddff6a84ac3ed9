"""BYOL (Grill et al. 2020): an online network predicts a momentum target network's projection.
`predictor=False` drops the predictor (the online projection regresses the target's directly), which is known
to collapse (for tests and demonstrations)."""
from dataclasses import replace

from torch import nn

from sslab.heads import cosine_momentum, ema_update, mlp, momentum_copy
from sslab.losses import NegativeCosineLoss
from sslab.methods import register
from sslab.methods.base import JointEmbedding


@register("byol")
class BYOL(JointEmbedding):
    check_projection = True  # collapse diagnosis also watches the projections

    def __init__(self, backbone, proj_dim: int = 128, hidden_dim: int = 512, momentum: float = 0.99,
                 predictor: bool = True):
        super().__init__()
        self.backbone = backbone
        self.projector = mlp([backbone.dim, hidden_dim, proj_dim])
        self.predictor = mlp([proj_dim, hidden_dim, proj_dim]) if predictor else nn.Identity()
        self.target_backbone = momentum_copy(backbone)
        self.target_projector = momentum_copy(self.projector)
        self.base_momentum = momentum
        self.loss = NegativeCosineLoss()

    def view_configs(self, base):
        """BYOL's asymmetric views (Grill et al. 2020, table 6): blur always on the first view and rarely on the
        second, solarisation only on the second (blur stays off below 64 px, as in the shared recipe)."""
        blur = base.blur_p > 0
        return [replace(base, blur_p=1.0 if blur else 0.0, solarize_p=0.0),
                replace(base, blur_p=0.1 if blur else 0.0, solarize_p=0.2)]

    def forward(self, x1, x2):
        p1 = self.predictor(self.projector(self.backbone(x1)))
        p2 = self.predictor(self.projector(self.backbone(x2)))
        z1 = self.target_projector(self.target_backbone(x1))
        z2 = self.target_projector(self.target_backbone(x2))
        return (self.loss(p1, z2) + self.loss(p2, z1)) / 2

    def after_step(self, progress):
        m = cosine_momentum(progress, self.base_momentum)
        ema_update(self.backbone, self.target_backbone, m)
        ema_update(self.projector, self.target_projector, m)
