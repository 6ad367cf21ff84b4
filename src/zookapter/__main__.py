"""`python -m zookapter ...` is the `zookapter` command."""

from .cli import main

raise SystemExit(main())
