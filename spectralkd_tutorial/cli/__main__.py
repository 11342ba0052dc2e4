"""``python -m spectralkd_tutorial.cli`` (e.g. under ``accelerate launch -m``)."""

import sys

from . import main

sys.exit(main())
