"""Put first on a child's PYTHONPATH by `gitrun record --autolog` (GITRUN_AUTOLOG=1).

Runs whatever sitecustomize the child would have run without it, then turns gitrun's
autologging on lazily: a framework's flavor is enabled when the child imports that framework,
so a child that trains nothing imports nothing heavy.
"""

import os
import sys


def _chain() -> None:
    """Import the next sitecustomize on sys.path (the one this file shadows), if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    me = sys.modules.pop("sitecustomize", None)
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    try:
        import sitecustomize  # noqa: F401  (the shadowed one)
    except ImportError:
        pass
    except Exception as e:  # as site.py does: report and go on
        print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{e!r}", file=sys.stderr)
    finally:
        sys.path[:] = saved
        if me is not None:
            sys.modules["sitecustomize"] = me


def _enable() -> None:
    try:
        from gitrun.mlflow.autolog import enable_from_environment
    except ImportError:
        print(
            "gitrun record --autolog: this Python cannot import gitrun, so nothing is "
            "autologged; install gitrun-ml in its environment.",
            file=sys.stderr,
        )
        return
    enable_from_environment()


_chain()
_enable()
