"""`python -m qcore` works the same as `qcore`."""

import sys

from qcore.cli.node import main

sys.exit(main())
