"""notebooks/analysis.ipynb runs end to end (nbclient) on real tiny-model run folders and on a saved CSV.

Shares the session's tiny sweep with tests/test_report_e2e.py (built once); needs the E2E data and Java.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_report_support import REPO_ROOT, TINY_JOBS, TINY_STUDY, build_tiny_sweep

from prefixlab.report.collect import collect_runs, write_summary

pytestmark = [pytest.mark.data, pytest.mark.slow]
NOTEBOOK = REPO_ROOT / "notebooks" / "analysis.ipynb"


def execute(monkeypatch: pytest.MonkeyPatch, **env: str) -> nbformat.NotebookNode:
    """Run the notebook in a fresh kernel with PREFIXLAB_REPORT_* set; raise on any cell error."""
    for key in ("RUNS", "CSV", "OUT", "X", "GROUP", "METRIC"):
        monkeypatch.delenv(f"PREFIXLAB_REPORT_{key}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(f"PREFIXLAB_REPORT_{key.upper()}", value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()
    return notebook


def text_of(notebook: nbformat.NotebookNode) -> str:
    """All stream and text/plain outputs."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif "data" in output:
                parts.append(output.data.get("text/markdown", output.data.get("text/plain", "")))
    return "\n".join(parts)


def images_of(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))


def test_notebook_is_clean_and_has_a_parameters_cell():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert any("parameters" in c.metadata.get("tags", []) for c in notebook.cells)
    assert all(
        not c.get("outputs") for c in notebook.cells if c.cell_type == "code"
    )  # committed without outputs
    assert "import torch" not in "".join(c.source for c in notebook.cells)


def test_notebook_on_run_folders(tmp_path_factory, monkeypatch, tmp_path: Path):
    runs_root = build_tiny_sweep(tmp_path_factory)
    out = tmp_path / "figures"
    notebook = execute(monkeypatch, runs=str(runs_root / TINY_STUDY), out=str(out))
    text = text_of(notebook)
    assert f"{TINY_JOBS} complete runs" in text and "1 incomplete left out" in text
    assert "Prefix placement and depth ablation" in text and "70.3" in text  # Table 5 with the paper column
    assert "5 paper figure(s)" in text  # prefix length vs BLEU/NIST/METEOR/ROUGE-L/CIDEr
    assert images_of(notebook) == 6  # five length figures and the generic one
    assert len(list(out.glob("*.pdf"))) == 6 and (out / "length_e2e_BLEU.png").is_file()


def test_notebook_on_a_saved_csv(tmp_path_factory, monkeypatch, tmp_path: Path):
    runs_root = build_tiny_sweep(tmp_path_factory)
    write_summary(collect_runs(runs_root), tmp_path, parquet=False)
    notebook = execute(monkeypatch, csv=str(tmp_path / "runs.csv"), x="method.length", group="label")
    text = text_of(notebook)
    assert f"{TINY_JOBS} complete runs from {tmp_path / 'runs.csv'}" in text
    assert images_of(notebook) == 6
