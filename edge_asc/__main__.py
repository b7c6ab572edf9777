import sys

from edge_asc.cli import main

sys.exit(main())
