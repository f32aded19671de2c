"""`python -m expert` is the same as the `expert` console script."""

from expert.cli import main

raise SystemExit(main())
