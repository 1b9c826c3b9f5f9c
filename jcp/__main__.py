"""`python -m jcp`: the same entry point as the `jcp` command (the image's entrypoint execs it,
so Python is PID 1 and gets SIGTERM)."""

import sys

from jcp.cli.main import main

sys.exit(main())
