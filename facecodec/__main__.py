"""`python -m facecodec`: the `facecodec` command (facecodec/cli.py)."""

import sys

from facecodec.cli import main

sys.exit(main())
