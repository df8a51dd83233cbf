"""synthlens: which synthetic medical image set actually helps, and what does it cost in privacy?

The pipeline reads like the package: data -> generators -> features -> metrics -> utility
-> analysis -> report, wired together in :mod:`synthlens.pipeline` and driven by
:mod:`synthlens.cli`. From Python: :func:`evaluate`, :func:`run` and :func:`open_run`
return a :class:`Results` (:mod:`synthlens.api`; the pipeline and torch are imported on
the first call, not by ``import synthlens``).
"""

from synthlens.api import evaluate, run
from synthlens.errors import InputError
from synthlens.results import Results, open_run

__version__ = "0.1.0"

__all__ = ["InputError", "Results", "__version__", "evaluate", "open_run", "run"]
