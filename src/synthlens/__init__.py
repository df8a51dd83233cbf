"""synthlens: which synthetic medical image set actually helps, and what does it cost in privacy?

The pipeline reads like the package: data -> generators -> features -> metrics -> utility
-> analysis -> report, wired together in :mod:`synthlens.pipeline` and driven by
:mod:`synthlens.cli`.
"""

from synthlens.errors import InputError
from synthlens.results import Results, open_run

__version__ = "0.1.0"

__all__ = ["InputError", "Results", "__version__", "open_run"]
