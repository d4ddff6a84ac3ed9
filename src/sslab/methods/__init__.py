"""Methods by name. Adding one is one file with `@register("name")` (and a recipe): every module of this package
registers itself when the package loads, and a method outside sslab registers when its module is imported, or
through the `sslab.methods` entry-point group of an installed package (docs/adding-a-method.md)."""
from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from typing import Any, Callable

from sslab.errors import SslabError
from sslab.methods.base import JointEmbedding, Method, Prepared

METHODS: dict[str, Callable[..., Method]] = {}
PLUGIN_ERRORS: dict[str, str] = {}  # entry-point name -> why that plug-in did not load (said when it is asked for)


def register(name: str):
    def deco(cls):
        METHODS[name] = cls
        return cls

    return deco


def check_method_name(name: str) -> None:
    """The one-line SslabError for a name that is not registered."""
    if name in PLUGIN_ERRORS and name not in METHODS:
        raise SslabError(PLUGIN_ERRORS[name])
    if name not in METHODS:
        raise SslabError(f"unknown method {name!r}; choose from {', '.join(sorted(METHODS))}")


def method_kind(name: str) -> str:
    """The data kind a registered method trains on ("image", "text")."""
    check_method_name(name)
    return METHODS[name].kind


def continuing_method(model_type: str | None) -> str | None:
    """The registered method that continues pretraining a Hugging Face model of `model_type` (its `continues`)."""
    return next((name for name, cls in METHODS.items() if model_type in getattr(cls, "continues", ())), None)


def build_method(name: str, net, **kwargs) -> Method:
    """The method `name` around `net` (an image backbone, or the text model its `build_net` makes)."""
    check_method_name(name)
    try:
        return METHODS[name](net, **kwargs)
    except TypeError as e:  # an unknown or missing method argument
        raise SslabError(f"invalid method_args for {name}: {e}") from None


def build_for_data(method: str, backbone: str, method_args: dict, meta: dict, cfg: Any = None) -> Method:
    """A fresh method for data described by `meta` (the data kind's `meta()`, as recorded in run.json): its
    network from `backbone`, its views set up for the data and the pretraining settings `cfg` (None: defaults)."""
    from sslab.config import PretrainConfig

    check_method_name(method)
    cls = METHODS[method]
    if meta.get("kind", "image") != cls.kind:
        raise SslabError(f"method {method!r} trains on {cls.kind} data, not on {meta.get('kind', 'image')} data")
    size = getattr(cfg, "foundation_image_size", None)  # the side a pretrained ImageNet backbone resizes to
    model = build_method(method, cls.build_net(backbone, {**meta, "foundation_image_size": size} if size else meta),
                         **method_args)
    model.setup(meta, cfg if cfg is not None else PretrainConfig(method=method, backbone=backbone))
    return model


def prepare_pretraining(splits, cfg: Any, out, root=None, corpus: list[str] | None = None) -> Prepared:
    """What `cfg.method` pretrains on, made from the loaded `splits` (see `Method.prepare`)."""
    check_method_name(cfg.method)
    if getattr(cfg, "early_stop", None) and not METHODS[cfg.method].holds_out:
        raise SslabError(f"early_stop: {cfg.method} holds out no part of its training data to choose weights on "
                         "(only the test split, which must not choose anything)")
    if corpus:  # extra unlabelled text: pretraining only, kept apart from the labelled texts
        from sslab.data.text import load_corpus

        splits.train.extra = load_corpus(list(corpus), root=root)
    return METHODS[cfg.method].prepare(splits, cfg, out)


def _register_all() -> None:
    """Import every method module of this package (each registers itself), then the installed plug-ins."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    for ep in entry_points(group="sslab.methods"):
        try:
            ep.load()
        except Exception as e:  # a broken plug-in: the other methods still work; asking for it says why not
            PLUGIN_ERRORS[ep.name] = f"the sslab.methods plug-in {ep.name!r} ({ep.value}) failed to load: {e}"


_register_all()

from sslab.methods.base import Energy, Generator, PairEncoder, Reconstructor  # noqa: E402  (the optional abilities)

__all__ = ["METHODS", "Method", "JointEmbedding", "Prepared", "Energy", "Generator", "PairEncoder", "Reconstructor", "prepare_pretraining", "register", "build_method", "build_for_data", "method_kind",
           "check_method_name", "continuing_method"]
