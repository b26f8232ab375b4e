"""disagg: find out why disaggregated LLM serving leaves its prefill workers idle.

`disagg.schemas` (config models, YAML loader, routing rule), `disagg.doctor` (the linter and, later, the live
doctor) and `disagg.runtime` (the reference runtime) live in the repository's root folders and are mapped into this
package by `pyproject.toml`.
"""

import os as _os

__version__ = "0.1.0"

# Run from a source checkout without an install (e.g. `python -m disagg` in the repository), the subpackages sit
# beside this folder rather than inside it; an installed copy has them inside and skips this.
_here = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.isdir(_os.path.join(_here, "schemas")):
    _root = _os.path.dirname(_here)
    if _os.path.isfile(_os.path.join(_root, "schemas", "routing.py")):
        __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821
