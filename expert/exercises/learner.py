"""The learner's file: imported fresh for every check, called through a guard that names file and line.

Why a guard: a learner's mistake should read as a sentence about their code ("latest_orders
raised KeyError at ex1_qualify_dedup.py:31"), not as a traceback through the checker.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from expert import PROJECT_ROOT
from expert.exercises.verdict import BadInputError, CheckFailedError

_loads = itertools.count()


def shown(path: Path) -> str:
    """A path as the learner knows it: relative to the repository when it is inside."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


class LearnerCode:
    """One import of the learner's file, and guarded calls into it."""

    def __init__(self, path: Path) -> None:
        self.path = path.resolve()
        self.module = load(self.path)

    def function(self, name: str, params: Sequence[str]) -> Callable[..., Any]:
        """The learner's `name`, with exactly the parameters the starter declares, wrapped in a guard."""
        fn = getattr(self.module, name, None)
        if not callable(fn):
            raise BadInputError(f"{shown(self.path)} has no function {name}({', '.join(params)})", shown(self.path))
        signature = inspect.signature(fn)
        got = [p.name for p in signature.parameters.values()]
        if got != list(params):
            line = inspect.getsourcelines(fn)[1] if inspect.isfunction(fn) else 0
            raise BadInputError(
                f"{name} takes ({', '.join(got)}) but the check calls it with ({', '.join(params)}): "
                "keep the starter's signature",
                f"{shown(self.path)}:{line}",
            )

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (CheckFailedError, BadInputError):
                raise
            except Exception as exc:
                where = self.where(exc)
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                if isinstance(exc, NotImplementedError):
                    raise CheckFailedError(
                        f"{name} is not written yet", message or "it raises NotImplementedError", where
                    ) from exc
                raise CheckFailedError(f"{name} raised {type(exc).__name__}", message or "(no message)", where) from exc

        guarded.__name__ = name
        return guarded

    def where(self, exc: BaseException) -> str:
        """`file:line` of the deepest frame of the learner's file in `exc`'s traceback."""
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == self.path]
        return f"{shown(self.path)}:{frames[-1].lineno}" if frames else shown(self.path)


def load(path: Path) -> ModuleType:
    """Import `path` as a fresh module (never cached: the learner just saved it)."""
    if not path.is_file():
        raise BadInputError(f"{shown(path)} does not exist", "run `expert reset ID` to get the starter back")
    name = f"expert_exercise_{next(_loads)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BadInputError(f"{shown(path)} cannot be imported", shown(path))
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise BadInputError(f"{shown(path)} does not parse: {exc.msg}", f"{shown(path)}:{exc.lineno or 0}") from None
    except Exception as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() == path.resolve()]
        line = frames[-1].lineno if frames else 0
        raise BadInputError(
            f"{shown(path)} fails on import: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            f"{shown(path)}:{line}",
        ) from None
    finally:
        sys.modules.pop(name, None)
    return module
