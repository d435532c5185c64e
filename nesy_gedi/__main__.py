import sys

from nesy_gedi.backends import die_with_parent
from nesy_gedi.cli import main

die_with_parent()  # a run started by a grid job ends with the job
sys.exit(main())
