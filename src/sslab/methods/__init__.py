"""Methods by name. Adding one is one file with `@register("name")` and its import below."""
from __future__ import annotations

from typing import Callable

from sslab.errors import SslabError
from sslab.methods.base import Method

METHODS: dict[str, Callable[..., Method]] = {}


def register(name: str):
    def deco(cls):
        METHODS[name] = cls
        return cls

    return deco


def check_method_name(name: str) -> None:
    """The one-line SslabError for a name that is not registered."""
    if name not in METHODS:
        raise SslabError(f"unknown method {name!r}; choose from {', '.join(sorted(METHODS))}")


def build_method(name: str, backbone, **kwargs) -> Method:
    check_method_name(name)
    try:
        return METHODS[name](backbone, **kwargs)
    except TypeError as e:  # an unknown or missing method argument
        raise SslabError(f"invalid method_args for {name}: {e}") from None


from sslab.methods import barlow, byol, dino, moco, simclr, simsiam, swav, vicreg  # noqa: E402,F401  (registers them)
