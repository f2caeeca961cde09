"""`python -m tinylab_cli ...` runs the `tinylab` command line."""
import sys

from tinylab_cli.main import main

sys.exit(main())
