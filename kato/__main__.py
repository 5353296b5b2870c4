"""`python -m kato` runs the command line."""

from kato.cli.app import main

main()
