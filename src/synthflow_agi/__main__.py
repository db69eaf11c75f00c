"""``python -m synthflow_agi`` is the ``synthflow-agi`` command."""
import sys

from ._cli import main

sys.exit(main())
