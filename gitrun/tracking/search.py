"""`search_runs`, MLflow's: the query engine (gitrun.query) asked with this session's
active experiment as the default."""

from __future__ import annotations

from typing import Any

from .._git import Repo
from ..errors import InvalidInputError
from .state import experiment_name


def search_runs(
    experiment_ids: list[str] | None = None,
    filter_string: str = "",
    run_view_type: Any = None,
    max_results: int = 100000,
    order_by: list[str] | None = None,
    output_format: str = "pandas",
    search_all_experiments: bool = False,
    experiment_names: list[str] | None = None,
) -> Any:
    """Search runs like `mlflow.search_runs`; a DataFrame (default) or a list of Run."""
    from ..format import journal
    from ..query.api import (
        check_max_results,
        check_order_by,
        frame_from_columns,
        lifecycles,
        resolve_experiments,
        to_dataframe,
        to_run,
    )
    from ..query.index import Row, search, search_columns

    if output_format not in ("pandas", "list"):
        raise ValueError(  # MLflow's own exception type here
            f"Unsupported output format: {output_format!r}; use 'pandas' or 'list'."
        )
    if filter_string is not None and not isinstance(filter_string, str):
        raise InvalidInputError(
            f"Invalid filter_string {filter_string!r}: it must be a string such as "
            "'metrics.acc > 0.9'."
        )
    max_results = check_max_results(max_results)
    order_by = check_order_by(order_by)
    repo = Repo.discover(bare_ok=True)
    journal.recover(repo, quiet=True)
    experiments = resolve_experiments(
        repo, experiment_ids, experiment_names, search_all_experiments, experiment_name()
    )

    def query(engine: Any) -> Any:
        return engine(
            repo,
            filter_string,
            order_by=order_by,
            experiments=experiments,
            lifecycles=lifecycles(run_view_type),
            max_results=max_results,
        )

    if output_format == "pandas":
        if experiments == []:
            return to_dataframe([])
        return frame_from_columns(query(search_columns))
    rows: list[Row] = [] if experiments == [] else query(search)
    if output_format == "list":
        return [to_run(r) for r in rows]
    return to_dataframe(rows)
