"""``python -m imagejobs``: the command line."""

from imagejobs.cli import main

raise SystemExit(main())
