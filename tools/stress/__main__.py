"""``python -m stress`` (with ``tools`` on the path): see :mod:`stress`."""

from stress import main

raise SystemExit(main())
