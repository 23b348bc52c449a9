"""Optional dependencies: import one, or say in one sentence what needs it and what to install.

torch (chapters 2 to 5), ipywidgets (live sliders) and numba (the compiled training loop) are
optional, so that ``import nblib`` stays light; a module that needs one asks for it here.
"""

from __future__ import annotations

import sys
from types import ModuleType

INSTALL = {
    "torch": "pip install torch (or pip install 'nblib[torch]')",
    "ipywidgets": "pip install ipywidgets (without it a notebook shows the pre-rendered player)",
}


def require(package: str, needed_by: str) -> ModuleType:
    """``import package``, or an ImportError that says ``needed_by`` needs it and how to install it."""
    try:
        __import__(package)                 # as an import statement does (so it can be faked in tests)
        return sys.modules[package]
    except ImportError as exc:
        raise ImportError(f"{needed_by} needs {package}, which is not installed: "
                          f"{INSTALL.get(package, f'pip install {package}')}") from exc
