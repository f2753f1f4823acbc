"""A wrapper that counts the calls made to what it wraps (a store, a queue): what the code asks of it."""

from __future__ import annotations

from collections import Counter
from typing import Any


class CountedCalls:
    """``inner`` with every method call counted by name in ``calls`` (the adapter may do more)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(*args, **kwargs)

        return counted
