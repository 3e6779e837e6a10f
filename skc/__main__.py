"""`python -m skc` is the `skc` command."""
import sys

from .cli import main

sys.exit(main())
