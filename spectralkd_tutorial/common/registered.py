"""A registry's names as a live, read-only tuple: what the feature-loss and strategy registries list.

``RegisteredNames(REGISTRY, keep)`` is the names of the entries that pass ``keep``, in registration
order, read from the registry on every use: an entry registered later is listed at once, so checks
and choices that hold the view (config validation, ``argparse`` choices) follow the registry.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Sequence, overload

__all__ = ["RegisteredNames"]


class RegisteredNames(Sequence[str]):
    """A live, read-only tuple-like view of ``registry``'s names whose entry passes ``keep``."""

    def __init__(self, registry: Mapping[str, Any], keep: Callable[[Any], bool] | None = None) -> None:
        self._registry, self._keep = registry, keep

    def _names(self) -> tuple[str, ...]:
        return tuple(name for name, entry in self._registry.items() if self._keep is None or self._keep(entry))

    def __len__(self) -> int:
        return len(self._names())

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...

    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self._names()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._names()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._names())
