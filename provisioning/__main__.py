"""`python -m provisioning`: the same as the `provisioning` command."""

from provisioning.cli import main

raise SystemExit(main())
