import sys

from nesy_gedi.cli import main

sys.exit(main())
