"""`python -m kop` runs the CLI."""

from kop.cli import main

raise SystemExit(main())
