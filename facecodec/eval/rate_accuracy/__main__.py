"""python -m facecodec.eval.rate_accuracy: the benchmark's command line (cli.py)."""

import sys

from facecodec.eval.rate_accuracy.cli import main

sys.exit(main())
