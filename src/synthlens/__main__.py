"""``python -m synthlens`` runs the command line."""

import sys

from synthlens.cli import main

sys.exit(main())
