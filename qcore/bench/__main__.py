"""``python -m qcore.bench``."""

from qcore.bench import main

raise SystemExit(main())
