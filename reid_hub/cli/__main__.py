"""`python -m reid_hub.cli` is the `reid-hub` command."""
import sys

from . import main

sys.exit(main())
