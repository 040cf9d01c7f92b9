"""``python -m instructor VERB``: see ``instructor/cli.py``."""

from instructor.cli import main

raise SystemExit(main())
