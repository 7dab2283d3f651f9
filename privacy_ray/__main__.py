"""``python -m privacy_ray`` runs the command line."""

from privacy_ray.cli import main

main()
