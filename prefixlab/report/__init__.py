"""Reports from runs: collect them into a DataFrame, draw the paper's figures, build its tables.

    from prefixlab.report import collect_runs, figure, ablation_table
    runs = collect_runs("runs/demo")                        # or collect_wandb(...), read_summary([...])
    fig = figure(runs.frame, x="method.length", metric="test.BLEU", group="label")
    print(ablation_table(runs.frame).to_markdown())

Modules: `collect` (run folders / W&B / CSV -> DataFrame), `figures`, `tables`, `paper` (the paper's numbers
from `experiments/*/paper*.csv`), `artifacts` (what each study gets), `cli` (`prefixlab report`).
Nothing here imports torch; names are imported lazily so `import prefixlab.report` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Collection": "collect",
    "IncompleteRun": "collect",
    "collect_runs": "collect",
    "collect_wandb": "collect",
    "read_summary": "collect",
    "write_summary": "collect",
    "figure": "figures",
    "length_figures": "figures",
    "lowdata_figures": "figures",
    "init_figures": "figures",
    "Table": "tables",
    "ablation_table": "tables",
    "e2e_main_table": "tables",
    "xsum_main_table": "tables",
    "summary_table": "tables",
    "comparison_table": "tables",
    "load_paper_table": "paper",
    "load_marks": "paper",
    "save_figure": "style",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the named function from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'prefixlab.report' has no attribute {name!r}")
    return getattr(import_module(f"prefixlab.report.{_EXPORTS[name]}"), name)
