"""``python -m cxrlearn.cli``."""

import sys

from . import main

sys.exit(main())
