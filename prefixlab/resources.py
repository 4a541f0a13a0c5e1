"""Where the shipped configs and paper data live: `prefixlab/conf` and `prefixlab/experiments`.

In the repository these are links to the top-level `conf/` and `experiments/` folders; a wheel (`pip install .`)
holds copies, so an installed prefixlab composes its configs and finds the paper's numbers from any folder.
Torch-free.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The Hydra config tree (`train.yaml` and the groups model/ task/ method/ ...).
CONF_DIR = PACKAGE_DIR / "conf"
#: One folder per paper experiment: its README, the paper's numbers (`paper*.csv`) and claims.
EXPERIMENTS_DIR = PACKAGE_DIR / "experiments"
