"""`python -m kato` runs the command line."""

from kato.cli.start import main

main()
