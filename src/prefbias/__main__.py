import sys

from prefbias.cli import main

sys.exit(main())
