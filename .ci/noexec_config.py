"""Print _config.yml with notebook execution turned off.

`make test` has just re-executed every chapter under nbval and checked that the outputs
committed in the notebooks reproduce; the test build then renders those outputs instead of
executing every chapter a second time. Paths in the printed config stay relative to the
book's root, where the Makefile writes it.
"""
import sys
from pathlib import Path

import yaml

config = yaml.safe_load(Path(__file__).resolve().parent.parent.joinpath("_config.yml").read_text())
config.setdefault("execute", {})["execute_notebooks"] = "off"
yaml.safe_dump(config, sys.stdout, sort_keys=False)
