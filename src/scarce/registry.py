"""Named registries: methods, tokenizers, backbones, probe families, data formats, CLI commands.

Each kind of extension point has one :class:`Registry`; an entry is registered by name where it is
defined (``@METHODS.register("mimjepa")`` above the class), config validation reads the allowed
names from the registry, and an unknown name is a one-line :class:`~scarce.errors.ConfigError`
that lists the known ones. Nothing falls through to a default (after timm's model registry).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from scarce.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name.

    Args:
        kind: what the entries are, for error messages (e.g. ``"method"``, ``"data format"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers its argument as ``name`` and returns it unchanged."""

        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
            self._entries[name] = entry
            return entry

        return add

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a toy entry clean up with this)."""
        self._entries.pop(name, None)

    def unknown(self, name: object) -> str:
        """The one-line message for an unregistered ``name`` (pydantic validators raise it as ValueError)."""
        return f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"

    def get(self, name: str) -> T:
        """The entry ``name``; an unknown name is a one-line :class:`ConfigError` listing the known ones."""
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(self.unknown(name)) from None

    def validate(self, name: str) -> str:
        """``name`` if registered, else ValueError (for pydantic field validators)."""
        if name not in self._entries:
            raise ValueError(self.unknown(name))
        return name

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def items(self) -> Iterator[tuple[str, T]]:
        yield from sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
