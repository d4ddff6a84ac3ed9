"""DINO (Caron et al. 2021): a student matches the centred, sharpened output of a momentum teacher, the teacher
seeing only the global views and the student all views (multi-crop: 2 global + `local_crops` small views)."""
import torch

from sslab.heads import DINOHead, cosine_momentum, ema_update, momentum_copy, multicrop_forward
from sslab.losses import DINOLoss
from sslab.methods import register
from sslab.methods.base import JointEmbedding


@register("dino")
class DINO(JointEmbedding):
    def __init__(self, backbone, out_dim: int = 1024, hidden_dim: int = 512, bottleneck_dim: int = 128,
                 momentum: float = 0.996, student_temp: float = 0.1, teacher_temp: float = 0.07,
                 warmup_teacher_temp: float = 0.04, warmup_teacher_temp_frac: float = 0.3,
                 center_momentum: float = 0.9, local_crops: int = 2, local_crop_size: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.projector = DINOHead(backbone.dim, out_dim, hidden_dim, bottleneck_dim)
        self.target_backbone, self.target_projector = momentum_copy(backbone), momentum_copy(self.projector)
        self.base_momentum = momentum
        self.loss = DINOLoss(out_dim, student_temp, teacher_temp, warmup_teacher_temp, warmup_teacher_temp_frac,
                             center_momentum)
        self.num_local_crops, self.local_crop_size = local_crops, local_crop_size

    def forward(self, *views):
        student = multicrop_forward(torch.nn.Sequential(self.backbone, self.projector), views)
        with torch.no_grad():
            teacher = multicrop_forward(torch.nn.Sequential(self.target_backbone, self.target_projector), views[:2])
        return self.loss(student, teacher)

    def after_step(self, progress):
        self.loss.progress.fill_(progress)
        m = cosine_momentum(progress, self.base_momentum)
        ema_update(self.backbone, self.target_backbone, m)
        ema_update(self.projector, self.target_projector, m)
