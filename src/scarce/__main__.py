"""``python -m scarce`` (also what ``torchrun -m scarce`` runs)."""

from scarce.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
