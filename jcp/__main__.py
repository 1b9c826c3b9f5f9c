import sys

from jcp.cli.main import main

sys.exit(main())
