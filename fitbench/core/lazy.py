"""A module imported on first use: the pytest plugin's controller process of an isolated session
trains nothing, so it must not pay for TensorFlow (about 600 MB resident) by importing a module
that names it at its top."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """Stands for module `name` until an attribute is read; then imports it (once)."""

    def __init__(self, name: str, before: Callable[[], Any] | None = None):
        super().__init__(name)
        self.__dict__["_loaded"] = None
        self.__dict__["_before"] = before

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_") and attribute != "__version__":
            # Introspection (pytest scans a plugin module's globals for fixtures and probes
            # `_mock_name`; copy and pickle probe dunders) must not import the module; fitbench
            # reads no private name of the modules it loads lazily (their __version__ only).
            raise AttributeError(attribute)
        loaded = self.__dict__["_loaded"]
        if loaded is None:
            if self.__dict__["_before"] is not None:
                self.__dict__["_before"]()
            loaded = self.__dict__["_loaded"] = importlib.import_module(self.__name__)
        return getattr(loaded, attribute)


def module(name: str, before: Callable[[], Any] | None = None) -> Any:
    """`tf = lazy.module("tensorflow", startup.load)`: `tf.config...` imports TensorFlow when
    first used, after `before` (TensorFlow's start-up, its noise filtered)."""
    return LazyModule(name, before)
