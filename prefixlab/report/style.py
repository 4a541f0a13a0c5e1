"""Display conventions shared by figures and tables: metric scales, names, decimals and the figure style.

Run summaries keep the raw values of `metrics.json` (E2E BLEU/METEOR/ROUGE_L on 0..1, NIST and CIDEr raw,
ROUGE already x100). Figures and tables show the paper's scale: E2E BLEU, METEOR and ROUGE-L x100.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefixlab.suites import SUITES

# The metrics each suite reports, in the paper's column order, and the multipliers from metrics.json to the
# paper's scale: views of `prefixlab.suites`, the one home of these facts.
SUITE_METRICS: dict[str, tuple[str, ...]] = {name: s.metrics for name, s in SUITES.items()}
SUITE_SCALE: dict[str, dict[str, float]] = {name: dict(s.scale) for name, s in SUITES.items()}
DISPLAY_NAMES = {
    "ROUGE_L": "ROUGE-L",
    "ROUGE_1": "ROUGE-1",
    "ROUGE_2": "ROUGE-2",
    "ROUGE_Lsum": "ROUGE-Lsum",
}

# Column-width figures (ACL: 3.3 in), fonts that stay readable when the PDF is placed at 100%.
COLUMN_WIDTH_IN = 3.3
FIGURE_SIZE = (COLUMN_WIDTH_IN, 2.4)
RC_PARAMS: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 6.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "pdf.fonttype": 42,  # TrueType, embedded: editable text, accepted by ACL/arXiv checkers
    "ps.fonttype": 42,
    "savefig.bbox": "tight",
    "savefig.dpi": 300,
}


def metric_name(column: str) -> str:
    """The metric of a column: `test.BLEU` -> `BLEU` (a bare name is returned unchanged)."""
    return column.split(".", 1)[1] if column.startswith(("test.", "validation.")) else column


def scale_for(metric: str, suite: str | None) -> float:
    """Factor from the stored value to the paper's scale (1 unless an E2E 0..1 metric)."""
    return SUITE_SCALE.get(suite or "", {}).get(metric_name(metric), 1.0)


def display_name(metric: str, suite: str | None = None) -> str:
    """A label for a metric column, with the scale when it was changed: `test.BLEU` -> `BLEU (x100)`."""
    name = metric_name(metric)
    label = DISPLAY_NAMES.get(name, name)
    if scale_for(metric, suite) == 100.0:
        label += " (×100)"
    return label


def decimals(metric: str, suite: str | None = None) -> int:
    """Decimal places the paper uses: 1 for E2E percentages, 2 for NIST, CIDEr and ROUGE, else 3."""
    name = metric_name(metric)
    if scale_for(metric, suite) == 100.0:
        return 1
    if name in ("NIST", "CIDEr") or name.startswith("ROUGE"):
        return 2
    return 3


@contextmanager
def figure_style() -> Iterator[None]:
    """Matplotlib settings for paper figures (also needed while saving: pdf.fonttype 42)."""
    import matplotlib

    with matplotlib.rc_context(RC_PARAMS):
        yield


def save_figure(fig: Any, stem: Path, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Write `fig` as `<stem>.png` and `<stem>.pdf` (embedded TrueType fonts, no timestamp); return paths."""
    paths = []
    stem.parent.mkdir(parents=True, exist_ok=True)
    with figure_style():
        for fmt in formats:
            path = stem.parent / f"{stem.name}.{fmt}"  # names may hold dots
            metadata = {"CreationDate": None} if fmt == "pdf" else None
            fig.savefig(path, format=fmt, metadata=metadata)
            paths.append(path)
    return paths
