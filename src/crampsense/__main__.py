"""``python -m crampsense`` runs the command line."""

from crampsense.cli.main import main

main()
