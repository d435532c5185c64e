import sys

from nesy_gedi.cli import main
from nesy_gedi.commands.backends import die_with_parent

die_with_parent()  # a run started by a grid job ends with the job
sys.exit(main())
