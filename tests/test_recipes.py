"""Per-method recipes: every YAML file validates against the schema and builds its method."""
import pytest

import sslab
from sslab.config import RECIPES, PretrainConfig, StudyConfig, load_config, scaled_lr
from sslab.nets import build_backbone

RECIPE_FILES = sorted(RECIPES.glob("*.yaml"))


def test_every_method_has_a_recipe():
    assert {p.stem for p in RECIPE_FILES} == set(sslab.METHODS)


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.stem)
def test_recipe_validates_and_builds(path):
    cfg = load_config(StudyConfig, path)
    assert cfg.pretrain.method == path.stem
    cls = sslab.METHODS[cfg.pretrain.method]
    if cls.kind == "image":
        net = build_backbone(cfg.pretrain.backbone, 1, image_size=28)
    else:  # a text recipe's network is sized by the tokenizer; a small stand-in vocabulary here
        meta = {"vocab_size": 100, "context": cfg.pretrain.context or 64, "pad_id": 0, "bos_id": 1, "eos_id": 2,
                "in_chans": 3, "image_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                "method_args": cfg.pretrain.method_args}
        net = cls.build_net(cfg.pretrain.backbone, meta)
    model = sslab.build_method(cfg.pretrain.method, net, **cfg.pretrain.method_args)
    assert isinstance(model, sslab.methods.Method)
    # the pretrain stage reads the same file
    assert load_config(PretrainConfig, path).method == path.stem


def test_recipe_by_name_and_overrides():
    cfg = load_config(StudyConfig, "byol", ["pretrain.lr=1e-3", "data=digits"])
    assert (cfg.pretrain.method, cfg.pretrain.lr, cfg.data) == ("byol", 1e-3, "digits")


def test_lr_scales_with_global_batch():
    cfg = PretrainConfig(lr=4e-3)
    assert scaled_lr(cfg, 256) == pytest.approx(4e-3)
    assert scaled_lr(cfg, 512) == pytest.approx(8e-3)
    assert scaled_lr(PretrainConfig(lr=4e-3, lr_scaling="sqrt"), 1024) == pytest.approx(8e-3)
    assert scaled_lr(PretrainConfig(lr=4e-3, lr_scaling="none"), 64) == pytest.approx(4e-3)


def test_default_study_recipe_is_the_schema_default():
    """`sslab study` with no options reads recipes/vicreg.yaml: it must be the measured default study."""
    a, b = load_config(StudyConfig, "vicreg").model_dump(), StudyConfig().model_dump()
    a["pretrain"].pop("method_args"), b["pretrain"].pop("method_args")
    assert a == b
