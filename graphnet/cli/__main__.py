"""``python -m graphnet.cli``: the ``graphnet`` command without installing the package."""

import sys

from . import main

sys.exit(main())
