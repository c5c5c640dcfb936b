"""`python -m stellarspec ...` runs the `stellarspec` command (stellarspec.cli)."""
import sys

from .cli import main

sys.exit(main())
