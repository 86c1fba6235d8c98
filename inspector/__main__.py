"""`python -m inspector` runs the same entry point as the `causallm-inspect` script."""

from inspector.cli import main

raise SystemExit(main())
