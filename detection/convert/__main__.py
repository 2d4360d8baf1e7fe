"""`python -m mocobench.detection.convert` (see cli.py)."""
import sys

from mocobench.detection.convert.cli import main

sys.exit(main())
