"""Classes registered by name (search spaces, benchmarks, search algorithms), so that a name in a
configuration file or on the command line finds its class, and a wrong name or a wrong constructor
argument is an error that says what would have been accepted."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """The classes of one ``kind`` (e.g. "search space", the word its errors use) by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: register the class as ``name``, which also becomes its ``name``."""

        def decorate(cls: type[T]) -> type[T]:
            if self._classes.get(name, cls) is not cls:
                raise ValueError(f"the {self.kind} name {name!r} is taken by {self._classes[name].__qualname__}")
            cls.name = name
            self._classes[name] = cls
            return cls

        return decorate

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except (KeyError, TypeError):  # TypeError: an unhashable "name"
            raise ValueError(f"unknown {self.kind} {name!r}; {self.kind}s are {self.names()}") from None

    def create(self, name: str, **arguments: Any) -> T:
        """An instance of the class ``name``. The arguments are checked against the constructor's
        signature first, so a TypeError raised inside a constructor is not mistaken for a bad one."""
        cls = self.get(name)
        try:
            inspect.signature(cls).bind(**arguments)
        except TypeError as exc:
            raise ValueError(f"bad arguments for the {name} {self.kind}: {exc}") from None
        return cls(**arguments)
