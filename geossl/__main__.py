"""``python -m geossl ...`` (also what ``torchrun -m geossl ...`` runs)."""

import sys

from geossl.cli import main

sys.exit(main())
