import sys

try:
    from nesy_gedi.cli import main
    from nesy_gedi.commands.backends import die_with_parent

    die_with_parent()  # a run started by a grid job ends with the job
    sys.exit(main())
except KeyboardInterrupt:  # Ctrl-C while Python still imports, before the command line's own handling
    sys.exit(130)
