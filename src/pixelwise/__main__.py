"""``python -m pixelwise`` runs the command line."""

from pixelwise.cli.main import main

main()
