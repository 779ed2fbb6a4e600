"""``python -m sluice``: the same command line as the ``sluice`` console script (``sluice --help``)."""

from sluice.apps.cli import main

if __name__ == "__main__":
    main()
