from sluice.apps.cli import main

main()
