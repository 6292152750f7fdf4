"""``python -m greenbench`` = the ``greenbench`` command."""

import sys

from greenbench.cli import main

sys.exit(main())
