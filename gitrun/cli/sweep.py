"""sweep: many recorded runs of one command over a parameter space."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from . import cli
from .common import command_after_options, format_option, quiet_option


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=SPEC",
    help="A param: a,b,c | 4..10 | loguniform:LO:HI | uniform:LO:HI | int:LO:HI | choice:a,b.",
)
@click.option("-e", "--experiment", help="Experiment of the sweep and its trials.")
@click.option("-n", "--name", help="Name of the sweep's parent run (trials: NAME-<number>).")
@click.option(
    "--random",
    "random_n",
    type=click.IntRange(min=1),
    metavar="N",
    help="N trials sampled at random (seeded: --seed).",
)
@click.option(
    "--optuna",
    "optuna_n",
    type=click.IntRange(min=1),
    metavar="N",
    help="N trials chosen by Optuna (TPE, seeded; needs --maximize/--minimize).",
)
@click.option("--seed", type=int, help="Seed of --random/--optuna (default: drawn, then kept).")
@click.option("--maximize", metavar="metrics.KEY", help="The objective to maximize.")
@click.option("--minimize", metavar="metrics.KEY", help="The objective to minimize.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Trials at once (default: the number of cores; dask: of the cluster).",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where trials run.",
)
@click.option("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786.")
@click.option("--remote", metavar="NAME", help="Git remote the Dask workers use (default: origin).")
@click.option(
    "--max-failures",
    type=click.IntRange(min=1),
    metavar="N",
    help="Start no more trials once N have failed.",
)
@click.option(
    "--resume",
    "resume_ref",
    metavar="SWEEP",
    help="Run the missing, failed and killed trials of an earlier sweep.",
)
@click.option(
    "--params-file",
    metavar="FILE",
    help="Also write each trial's params into FILE in its worktree (YAML/JSON).",
)
@click.option("--metrics-file", metavar="FILE", help="JSON/YAML file each trial writes (metrics).")
@click.option(
    "-a",
    "--artifact",
    "artifacts",
    multiple=True,
    metavar="PATH",
    help="File or directory kept from each trial.",
)
@format_option(choices=("table", "json", "csv"))
@quiet_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def sweep(
    params,
    experiment,
    name,
    random_n,
    optuna_n,
    seed,
    maximize,
    minimize,
    jobs,
    executor,
    scheduler,
    remote,
    max_failures,
    resume_ref,
    params_file,
    metrics_file,
    artifacts,
    fmt,
    quiet,
    command,
):
    """Run COMMAND once per point of a parameter space, each run recorded as by
    `gitrun record` and grouped under one parent run (the sweep).

    Each trial runs in a git worktree of its own at the code commit (the snapshot
    when the work tree is dirty), so parallel trials never share files and your work
    tree is untouched. A trial gets its params as {name} in the command, as
    GITRUN_PARAM_<NAME> environment variables, and with --params-file in that file.
    A failing trial is recorded FAILED and the sweep goes on; Ctrl-C stops every
    trial (recorded KILLED); --resume SWEEP runs what is missing later.

    \b
    Example:
      gitrun sweep -e churn -p lr=0.01,0.03,0.1 -p depth=4..10 -j 4 -- \\
          python train.py --lr {lr} --depth {depth}
      gitrun sweep --random 200 -p lr=loguniform:1e-4:1e-1 -p depth=int:3:12 --seed 7 \\
          -- python train.py
      gitrun sweep --optuna 50 --maximize metrics.f1 -p lr=loguniform:1e-4:1e-1 \\
          -- python train.py
      gitrun sweep --resume my-sweep
      gitrun ls --parent my-sweep
    """
    from ..errors import UsageError
    from ..workflows import sweep as sw

    opts = sw.SweepOptions(
        command=command_after_options(command),
        params=list(params),
        experiment=experiment,
        name=name,
        random=random_n,
        optuna=optuna_n,
        seed=seed,
        maximize=maximize,
        minimize=minimize,
        jobs=jobs,
        executor=executor,
        scheduler=scheduler,
        remote=remote,
        max_failures=max_failures,
        params_file=params_file,
        metrics_file=metrics_file,
        artifacts=list(artifacts),
        quiet=quiet,
        argv=["gitrun", *sys.argv[1:]],
    )
    if executor == "dask" and not scheduler:
        raise UsageError("--executor dask needs --scheduler ADDRESS, e.g. tcp://127.0.0.1:8786.")
    bar = _Bar(quiet)
    try:
        if resume_ref:
            given = [
                o
                for o, v in (
                    ("-p", params),
                    ("--random", random_n),
                    ("--optuna", optuna_n),
                    ("--seed", seed),
                    ("--maximize", maximize),
                    ("--minimize", minimize),
                    ("--params-file", params_file),
                    ("--metrics-file", metrics_file),
                    ("-a", artifacts),
                    ("-e", experiment),
                    ("-n", name),
                    ("COMMAND", command),
                )
                if v
            ]
            if given:
                raise UsageError(
                    f"--resume takes the sweep's spec from its parent run; leave out "
                    f"{', '.join(given)} (-j, --executor, --max-failures and -q may be given)."
                )
            result = sw.resume(resume_ref, opts, bar)
        else:
            result = sw.start(opts, bar)
    finally:
        bar.finish()
    p = result.progress
    for e in result.errors[:20]:
        click.echo(f"gitrun: {e}", err=True)
    if len(result.errors) > 20:
        click.echo(f"gitrun: ... and {len(result.errors) - 20} more.", err=True)
    if p.objective and p.best is None and p.finished:
        click.echo(
            f"gitrun: warning: no finished trial logged metrics.{p.objective}, so the sweep "
            "has no best trial; check the metric's name.",
            err=True,
        )
    cols = ["sweep", "status", "trials", "finished", "failed", "killed", "best", "best_run"]
    row = [
        result.parent_id[:8] if fmt == "table" else result.parent_id,
        result.status,
        p.total,
        p.finished + p.done_before,
        p.failed,
        p.killed,
        p.best,
        (p.best_run or "")[:8] if fmt == "table" else p.best_run,
    ]
    if fmt != "table" or not quiet:
        from .render import render

        click.echo(render(cols, [row], fmt))
    if not quiet and fmt == "table":
        click.echo(
            f"gitrun: trials: gitrun ls --parent {result.parent_id[:8]}; "
            f"resume: gitrun sweep --resume {result.parent_id[:8]}"
            if result.status != "FINISHED"
            else f"gitrun: trials: gitrun ls --parent {result.parent_id[:8]}",
            err=True,
        )
    sys.exit(0 if result.status == "FINISHED" else (130 if result.status == "KILLED" else 1))


class _Bar:
    """One line on stderr, redrawn: done/total, running, failed, best so far, ETA."""

    def __init__(self, quiet: bool) -> None:
        self.on = not quiet and sys.stderr.isatty()
        self.last = 0.0
        self.width = 0

    def __call__(self, p: Any) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if now - self.last < 0.1 and p.done < p.total:
            return
        self.last = now
        n = 24
        filled = int(n * p.done / p.total) if p.total else n
        parts = [
            f"gitrun sweep [{'#' * filled}{'-' * (n - filled)}] {p.done}/{p.total}",
            f"running {p.running}",
            f"failed {p.failed + p.killed}",
        ]
        if p.best is not None:
            parts.append(f"best {p.objective}={p.best:.4g}")
        eta = p.eta()
        if eta is not None:
            parts.append(f"ETA {int(eta) // 60}:{int(eta) % 60:02d}")
        line = "  ".join(parts)
        pad = max(0, self.width - len(line))
        self.width = len(line)
        sys.stderr.write("\r" + line + " " * pad)
        sys.stderr.flush()

    def finish(self) -> None:
        if self.on and self.width:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.width = 0
