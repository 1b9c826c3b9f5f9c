import sys

from jcp.cli import main

sys.exit(main())
