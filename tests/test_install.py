"""A non-editable install carries its configs and paper data: the wheel holds every file of conf/ and the
experiments' data, and the installed copy composes the demo preset from another folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from prefixlab.provenance import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO_ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return next(out.glob("prefixlab-*.whl"))


def test_the_wheel_ships_every_config_and_the_papers_numbers(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in (REPO_ROOT / "conf").rglob("*.yaml"):
        assert f"prefixlab/conf/{path.relative_to(REPO_ROOT / 'conf')}" in names
    for path in (REPO_ROOT / "experiments").rglob("*.csv"):
        assert f"prefixlab/experiments/{path.relative_to(REPO_ROOT / 'experiments')}" in names


def test_the_installed_copy_composes_the_demo_preset_from_another_folder(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = (
        "import prefixlab, prefixlab.resources as r\n"
        "from hydra import compose, initialize_config_dir\n"
        "from prefixlab.run_config import parse_run_config\n"
        "assert prefixlab.__file__.startswith(r'{site}'), prefixlab.__file__\n"
        "assert not r.CONF_DIR.is_symlink() and (r.CONF_DIR / 'train.yaml').is_file()\n"
        "with initialize_config_dir(config_dir=str(r.CONF_DIR), version_base='1.3'):\n"
        "    cfg = compose('train', overrides=['experiment=demo', 'variant=EMB-5'])\n"
        "config = parse_run_config(cfg)\n"
        "from prefixlab.report.paper import experiments_dir\n"
        "assert (experiments_dir() / 'e2e_main' / 'paper.csv').is_file()\n"
        "print(config.study, config.label, config.model['name'])\n"
    ).replace("{site}", str(site))
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["demo", "EMB-5", "smollm2-135m"]
