"""``python -m synthlens`` runs the command line."""

import sys

from synthlens.cli import main

if __name__ == "__main__":  # not in a worker process that imports it
    sys.exit(main())
