"""SnapStart runtime hooks, with the API of AWS's `snapshot_restore_py` package.

A function registers hooks at module level; with SnapStart, `before snapshot` hooks run once in
the initialised template, and `after restore` hooks run in every environment forked from it
(reconnect, re-seed, refresh credentials). Without SnapStart they are simply never called.
"""

from typing import Any, Callable, List, Tuple

Hook = Tuple[Callable[..., Any], tuple, dict]
_before_snapshot: List[Hook] = []
_after_restore: List[Hook] = []


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    _before_snapshot.append((func, args, kwargs))
    return func


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    _after_restore.append((func, args, kwargs))
    return func


def get_before_snapshot() -> List[Hook]:
    return _before_snapshot


def get_after_restore() -> List[Hook]:
    return _after_restore
