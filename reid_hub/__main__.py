"""`python -m reid_hub ...` is the `reid-hub` command; `torchrun --nproc-per-node N -m reid_hub train ...` runs the
one training loop in every process."""
import sys

from .cli import main

sys.exit(main())
