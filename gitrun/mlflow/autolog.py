"""Autologging: the flavor table, `gitrun.autolog()`, and the machinery every flavor shares.

Importing this module is cheap (no framework, no tracking); everything heavy happens inside
functions.  A flavor module `gitrun/mlflow/<flavor>.py` uses this API and nothing else from here:

``AUTOLOG_FLAVORS``
    flavor name -> ``Flavor(framework, module, extra, triggers)``: the import name whose
    presence means "installed", the gitrun module that has ``autolog()``, the pip extra for the
    install hint, and every import name whose import turns the flavor on lazily
    (``gitrun.autolog()`` and ``gitrun record --autolog`` never import a framework themselves).
``configure(flavor, **settings) -> AutologConfig``
    the first thing a flavor's ``autolog()`` does: store its arguments (MLflow's names:
    log_models, log_input_examples, log_model_signatures, log_datasets, disable, exclusive,
    disable_for_unsupported_versions, silent, extra_tags, registered_model_name; anything else
    goes to ``.extra``).  ``config(flavor)`` reads them back; ``enabled(flavor)`` says whether
    the flavor is on (configured and not disabled).
``require_framework(flavor)``
    import the framework or raise MissingDependencyError: one sentence saying how to install it.
``check_version(flavor, version, minimum, maximum) -> bool``
    warn once (per flavor) when the installed version is outside the tested range; returns
    whether it is inside.
``supported(flavor, versions, minimum, maximum) -> bool``
    check_version for a configured flavor; outside the range with
    disable_for_unsupported_versions the flavor is turned off and unpatched (False).
``patch(flavor, owner, name, wrapper)`` / ``unpatch(flavor)``
    replace ``owner.name`` by a function calling ``wrapper(original, *args, **kwargs)`` (only
    while the flavor is enabled; otherwise the original runs); unpatch restores every original.
``outermost()``
    context manager yielding True only for the outermost autologged call of this thread, across
    all flavors (a Keras fit inside a callback, an xgboost fit inside a sklearn search: only the
    outer call logs).
``autolog_run(flavor)``
    context manager: yields the LiveRun to log to — the active run, or one started here (tagged
    ``mlflow.autologging=<flavor>`` plus extra_tags) and ended FINISHED, or FAILED when the
    body raises.  Yields None when ``exclusive`` and the user has a run active (nothing logged).
``with_callback(fn, args, kwargs, cb) -> (args, kwargs)``
    the arguments of a call to ``fn`` with ``cb`` appended to its ``callbacks`` argument.
``warn(flavor, message)`` / ``safely(flavor, what)``
    a warning on stderr unless ``silent``; ``safely`` turns an exception raised while logging
    into such a warning (logging never breaks the user's training).
``log_saved_model(save, name, registered_model_name=None) -> ModelInfo``
    a flavor's log_model in one call: ``save(local_dir, run_id, artifact_path)`` writes the
    model directory (returning the MLmodel contents, as ``mlmodel.write_mlmodel`` does); it
    becomes the active run's artifacts under ``name`` (MLflow's runs:/<id>/<name>), and a new
    version of ``registered_model_name`` when given.
``log_model_dir(save_model, model, name, registered_model_name, **save_kwargs) -> ModelInfo``
    the same with the flavor's own ``save_model(model, local_dir, _run_id=, _artifact_path=,
    **save_kwargs)``.
``autolog(...)``
    the umbrella, MLflow's ``mlflow.autolog`` signature (``gitrun.autolog``).

A flavor's fit wrapper, in short::

    def _train(original, *args, **kwargs):
        with autolog.outermost() as top:
            if not top:
                return original(*args, **kwargs)
            with autolog.autolog_run("xgboost") as live:
                if live is None:
                    return original(*args, **kwargs)
                result = original(*args, **kwargs)
                with autolog.safely("xgboost", "the model"):
                    ...  # live.log_param / live.log_metric / log_model(...)
                return result
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .mlmodel import ModelInfo

ENV_AUTOLOG = "GITRUN_AUTOLOG"  # "1" in the environment of `gitrun record`: autolog the child


class Flavor(NamedTuple):
    framework: str  # import name that must be importable for the flavor to apply
    module: str  # gitrun module with autolog()
    extra: str  # what `pip install` needs for the install hint
    triggers: tuple[str, ...]  # imports that turn the flavor on lazily


AUTOLOG_FLAVORS: dict[str, Flavor] = {
    "sklearn": Flavor("sklearn", "gitrun.mlflow.sklearn", "'gitrun-ml[sklearn]'", ("sklearn",)),
    "xgboost": Flavor("xgboost", "gitrun.mlflow.xgboost", "'gitrun-ml[xgboost]'", ("xgboost",)),
    "lightgbm": Flavor(
        "lightgbm", "gitrun.mlflow.lightgbm", "'gitrun-ml[lightgbm]'", ("lightgbm",)
    ),
    "pytorch": Flavor(
        "lightning",
        "gitrun.mlflow.pytorch",
        "'gitrun-ml[pytorch]'",
        ("lightning", "pytorch_lightning"),
    ),
    "keras": Flavor("keras", "gitrun.mlflow.keras", "'gitrun-ml[keras]'", ("keras",)),
    "pyspark.ml": Flavor(
        "pyspark", "gitrun.mlflow.pyspark_ml", "'gitrun-ml[spark]'", ("pyspark.ml",)
    ),
}


# ---------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------
class AutologConfig:
    """One flavor's autolog() arguments (MLflow's names and defaults)."""

    def __init__(self, **settings: Any) -> None:
        self.log_models = True
        self.log_input_examples = False
        self.log_model_signatures = True
        self.log_datasets = True
        self.disable = False
        self.exclusive = False
        self.disable_for_unsupported_versions = False
        self.silent = False
        self.extra_tags: dict[str, Any] = {}
        self.registered_model_name: str | None = None
        self.extra: dict[str, Any] = {}  # flavor-specific arguments
        self.globally = False  # set by gitrun.autolog(), not by the flavor's own autolog()
        for k, v in settings.items():
            if k == "extra_tags":
                self.extra_tags = dict(v or {})
            elif hasattr(self, k) and k not in ("extra", "globally"):
                setattr(self, k, v)
            else:
                self.extra[k] = v


_configs: dict[str, AutologConfig] = {}
_lock = threading.RLock()


def configure(flavor: str, **settings: Any) -> AutologConfig:
    """Store a flavor's autolog() arguments; returns them."""
    if settings.get("registered_model_name") is not None:
        from ..format.registry import check_model_name

        check_model_name(settings["registered_model_name"])  # refused now, not after a fit
    cfg = AutologConfig(**settings)
    with _lock:
        _configs[flavor] = cfg
    return cfg


def config(flavor: str) -> AutologConfig:
    """A flavor's current settings (MLflow's defaults when autolog() was never called)."""
    return _configs.get(flavor) or AutologConfig()


def enabled(flavor: str) -> bool:
    cfg = _configs.get(flavor)
    return cfg is not None and not cfg.disable


# ---------------------------------------------------------------------------
# framework presence and versions
# ---------------------------------------------------------------------------
def installed(flavor: str) -> bool:
    """Whether the flavor's framework can be imported (without importing it)."""
    return importable(AUTOLOG_FLAVORS[flavor].framework)


def importable(name: str) -> bool:
    """Whether the module `name` can be imported, without importing it."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require_framework(flavor: str) -> Any:
    """Import the flavor's framework, or say in one sentence how to install it."""
    from ..errors import require

    f = AUTOLOG_FLAVORS[flavor]
    return require(f.framework, f.extra)


_version_warned: set[str] = set()


def _version_tuple(v: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in v.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        out.append(int(digits))
        if not part.isdigit():
            break
    return tuple(out)


def check_version(flavor: str, version: str, minimum: str, maximum: str) -> bool:
    """Whether `version` lies in [minimum, maximum] (a maximum "2" covers every 2.x); outside,
    a warning once per flavor."""
    v, lo, hi = _version_tuple(version), _version_tuple(minimum), _version_tuple(maximum)
    ok = lo <= v and v[: len(hi)] <= hi
    if not ok and flavor not in _version_warned:
        _version_warned.add(flavor)
        framework = AUTOLOG_FLAVORS[flavor].framework if flavor in AUTOLOG_FLAVORS else flavor
        warn(
            flavor,
            f"{framework} {version} is outside the versions gitrun's {flavor} autologging is "
            f"tested with ({minimum} to {maximum}.x); it may not log everything.",
        )
    return ok


def supported(flavor: str, versions: Iterable[str], minimum: str, maximum: str) -> bool:
    """Whether the configured flavor is to patch its framework: check_version of each installed
    `versions`; outside the range with disable_for_unsupported_versions, the flavor is turned
    off (and unpatched) instead."""
    in_range = all([check_version(flavor, v, minimum, maximum) for v in versions])
    cfg = config(flavor)
    if in_range or not cfg.disable_for_unsupported_versions:
        return True
    cfg.disable = True
    unpatch(flavor)
    return False


# ---------------------------------------------------------------------------
# warnings
# ---------------------------------------------------------------------------
def warn(flavor: str, message: str) -> None:
    """A warning on stderr, unless the flavor's autolog was configured silent."""
    if config(flavor).silent:
        return
    warnings.warn(f"gitrun {flavor} autologging: {message}", UserWarning, stacklevel=3)


@contextlib.contextmanager
def safely(flavor: str, what: str) -> Iterator[None]:
    """Run a logging step; an exception becomes a warning (training goes on)."""
    try:
        yield
    except Exception as e:
        warn(flavor, f"{what} not logged ({type(e).__name__}: {e})")


# ---------------------------------------------------------------------------
# patching
# ---------------------------------------------------------------------------
_patches: dict[str, list[tuple[Any, str, Any]]] = {}
_PATCH_MARK = "__gitrun_autolog_original__"


def patch(flavor: str, owner: Any, name: str, wrapper: Callable[..., Any]) -> None:
    """Replace `owner.name` (a function or a method defined on the class `owner`) by one that
    calls `wrapper(original, *args, **kwargs)` while the flavor is enabled. Patching twice is a
    no-op."""
    original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
    if original is None:
        original = getattr(owner, name)
    if getattr(original, _PATCH_MARK, None) is not None:
        return
    call = original.__func__ if isinstance(original, (staticmethod, classmethod)) else original

    @functools.wraps(call)
    def patched(*args: Any, **kwargs: Any) -> Any:
        if not enabled(flavor):
            return call(*args, **kwargs)
        return wrapper(call, *args, **kwargs)

    setattr(patched, _PATCH_MARK, original)
    replacement: Any = patched
    if isinstance(original, staticmethod):
        replacement = staticmethod(patched)
    elif isinstance(original, classmethod):
        replacement = classmethod(patched)
    setattr(owner, name, replacement)
    with _lock:
        _patches.setdefault(flavor, []).append((owner, name, original))


def unpatch(flavor: str) -> None:
    """Put back every original the flavor replaced."""
    with _lock:
        done = _patches.pop(flavor, [])
    for owner, name, original in reversed(done):
        setattr(owner, name, original)


# ---------------------------------------------------------------------------
# the autolog run
# ---------------------------------------------------------------------------
_state = threading.local()


@contextlib.contextmanager
def outermost() -> Iterator[bool]:
    """True for the outermost autologged call of this thread, False for calls inside it."""
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        yield depth == 0
    finally:
        _state.depth = depth


def inside_autologged_call() -> bool:
    return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def autolog_run(flavor: str) -> Iterator[Any]:
    """The run an autologged fit logs to: the active one, or one started (and ended) here."""
    from .. import tracking

    cfg = config(flavor)
    if tracking.active_run() is not None:
        yield None if cfg.exclusive else tracking.live_run()
        return
    tracking.start_run()
    live = tracking.live_run()
    with safely(flavor, "the autologging tags"):
        live.set_tag("mlflow.autologging", flavor)
        for k, v in cfg.extra_tags.items():
            live.set_tag(k, v)
    try:
        yield live
    except BaseException as e:
        tracking.end_run("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    tracking.end_run("FINISHED")


def logged_call(flavor: str, call: Callable[[], Any], log: Callable[[Any], Any]) -> Any:
    """An autologged call: the outermost one of the thread runs `log(live)` (which makes the
    call) in the autolog run; one inside another autologged call, or with exclusive=True while
    the user's run is active, is just `call()`."""
    with outermost() as top:
        if not top:  # a fit inside an autologged call (a fit in a callback, a sweep)
            return call()
        with autolog_run(flavor) as live:
            if live is None:  # exclusive=True and the user's run is active
                return call()
            return log(live)


def with_callback(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], cb: Any) -> tuple:
    """(args, kwargs) for calling `fn` with `cb` appended to its `callbacks` argument; the
    caller's own list is left as it was."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return args, kwargs  # the call is wrong anyway: let the framework say so
    bound.arguments["callbacks"] = list(bound.arguments.get("callbacks") or []) + [cb]
    return bound.args, bound.kwargs


# ---------------------------------------------------------------------------
# logging a model directory
# ---------------------------------------------------------------------------
def log_saved_model(
    save: Callable[[str, str, str], dict[str, Any]],
    name: str,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Write a model directory with `save` and log it as artifacts of the active run (started
    if none) under `name`; returns the ModelInfo."""
    import shutil
    import tempfile

    from .. import tracking
    from ..capture import artwalk
    from . import mlmodel

    if registered_model_name is not None:
        from ..format.registry import check_model_name

        check_model_name(registered_model_name)  # refused before anything is logged
    dest = tracking.safe_artifact_path(name)
    live = tracking.live_run()
    tmp = tempfile.mkdtemp(prefix="gitrun-model-")
    try:
        local = os.path.join(tmp, "model")
        doc = save(local, live.run_id, dest)
        for full, rel_path, _size in artwalk.walk(local, artwalk.Limits(0, 0)).files:
            live.log_artifact_file(full, f"{dest}/{rel_path}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info = mlmodel.ModelInfo.from_mlmodel(doc, f"runs:/{live.run_id}/{dest}")
    if registered_model_name is not None:
        info.registered_model_version = tracking.register_model(
            info.model_uri, registered_model_name
        ).version
    return info


def log_model_dir(
    save_model: Callable[..., dict[str, Any]],
    model: Any,
    name: str,
    registered_model_name: str | None,
    /,
    **save_kwargs: Any,
) -> ModelInfo:
    """A flavor's log_model: `save_model(model, local_dir, **save_kwargs)` (with the run id and
    artifact path the MLmodel file records) logged as log_saved_model does."""

    def save(local: str, run_id: str, dest: str) -> dict[str, Any]:
        return save_model(model, local, _run_id=run_id, _artifact_path=dest, **save_kwargs)

    return log_saved_model(save, name, registered_model_name)


# ---------------------------------------------------------------------------
# gitrun.autolog(): every installed flavor, now or when its framework is imported
# ---------------------------------------------------------------------------
def _call_flavor(flavor: str, settings: dict[str, Any]) -> None:
    prev = _configs.get(flavor)
    if prev is not None and not prev.globally:
        return  # the flavor's own autolog() call wins, as in MLflow
    module = importlib.import_module(AUTOLOG_FLAVORS[flavor].module)
    fn = module.autolog
    try:
        names = set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        names = set()
    fn(**{k: v for k, v in settings.items() if k in names})
    cfg = _configs.get(flavor)
    if cfg is not None:
        cfg.globally = True


def _setup(flavor: str, settings: dict[str, Any]) -> None:
    try:
        _call_flavor(flavor, settings)
    except Exception as e:  # one flavor failing to set up leaves the others on
        if not settings.get("silent"):
            warnings.warn(
                f"gitrun could not enable {flavor} autologging ({type(e).__name__}: {e}).",
                UserWarning,
                stacklevel=2,
            )


def autolog(
    log_input_examples: bool = False,
    log_model_signatures: bool = True,
    log_models: bool = True,
    log_datasets: bool = True,
    log_traces: bool = True,
    disable: bool = False,
    exclusive: bool = False,
    disable_for_unsupported_versions: bool = False,
    silent: bool = False,
    extra_tags: dict[str, str] | None = None,
    exclude_flavors: list[str] | None = None,
) -> None:
    """Enable (or with disable=True, disable) autologging for every flavor whose framework is
    installed: now for frameworks already imported, at their import for the others.  A flavor's
    own autolog() call takes precedence over these settings, as in MLflow."""
    settings = {
        "log_input_examples": log_input_examples,
        "log_model_signatures": log_model_signatures,
        "log_models": log_models,
        "log_datasets": log_datasets,
        "disable": disable,
        "exclusive": exclusive,
        "disable_for_unsupported_versions": disable_for_unsupported_versions,
        "silent": silent,
        "extra_tags": extra_tags,
    }
    excluded = set(exclude_flavors or ())
    unknown = excluded - set(AUTOLOG_FLAVORS)
    if unknown:
        from ..errors import InvalidInputError

        raise InvalidInputError(
            f"Unknown flavor {', '.join(sorted(unknown))} in exclude_flavors; gitrun autologs "
            f"{', '.join(AUTOLOG_FLAVORS)}."
        )
    if extra_tags is not None and not isinstance(extra_tags, dict):
        from ..errors import InvalidInputError

        raise InvalidInputError("extra_tags must be a dict of tag names to values.")
    for flavor in AUTOLOG_FLAVORS:
        if flavor in excluded:
            continue
        if disable:  # every flavor, also one its own autolog() turned on
            _hooks.pop(flavor, None)
            if flavor in _configs:
                _configs[flavor].disable = True
                unpatch(flavor)
                module = sys.modules.get(AUTOLOG_FLAVORS[flavor].module)
                if module is not None:
                    with safely(flavor, "disabling"):
                        module.autolog(disable=True)
            continue
        if not installed(flavor):
            continue
        triggers = AUTOLOG_FLAVORS[flavor].triggers
        if any(sys.modules.get(t) is not None for t in triggers):
            _setup(flavor, settings)
        else:
            _hooks[flavor] = settings
            _install_finder()


# ---------------------------------------------------------------------------
# post-import hooks: turn a flavor on when its framework finishes importing
# ---------------------------------------------------------------------------
_hooks: dict[str, dict[str, Any]] = {}  # flavor -> settings, waiting for the framework


def _fire(fullname: str) -> None:
    for flavor, f in AUTOLOG_FLAVORS.items():
        if fullname in f.triggers and flavor in _hooks:
            settings = _hooks.pop(flavor)
            _setup(flavor, settings)


class _LoaderWrapper(importlib.abc.Loader):
    def __init__(self, loader: Any, fullname: str) -> None:
        self._loader = loader
        self._fullname = fullname

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # the module's own spec/loader stay the original ones (pickling, importlib.reload)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _fire(self._fullname)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Watches the imports of the frameworks waiting in `_hooks`; finds nothing itself."""

    _busy = threading.local()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not _hooks or getattr(self._busy, "on", False):
            return None
        if not any(fullname in AUTOLOG_FLAVORS[f].triggers for f in _hooks):
            return None
        self._busy.on = True
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.on = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _LoaderWrapper(spec.loader, fullname)
        return spec


_finder: _Finder | None = None


def _install_finder() -> None:
    global _finder
    with _lock:
        if _finder is None:
            _finder = _Finder()
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def enable_from_environment() -> None:
    """What `gitrun record --autolog` runs at the child's start: gitrun.autolog() when
    GITRUN_AUTOLOG is 1/true (frameworks turn on as the child imports them)."""
    if os.environ.get(ENV_AUTOLOG, "").strip().lower() in ("1", "true", "yes", "on"):
        autolog(silent=False)
