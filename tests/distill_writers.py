"""``spectralkd`` that records which process writes the shipped model: each call of the distill
module's ``save_pretrained_atomic`` leaves ``$SPECTRALKD_TEST_WRITERS/rank-N`` (N = ``$RANK``) and then
waits a moment, so that two writers would overlap. Launched by ``tests/test_runs_never_lie_2.py``
under ``torchrun``; the arguments are ``spectralkd``'s."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from spectralkd_tutorial.cli import app as cli

from spectralkd_tutorial.pipelines import distill
WRITERS = Path(os.environ["SPECTRALKD_TEST_WRITERS"])
_save = distill.save_pretrained_atomic


def _recorded(*args, **kwargs):
    (WRITERS / f"rank-{os.environ.get('RANK', '0')}").write_text("wrote the model\n")
    time.sleep(0.5)
    return _save(*args, **kwargs)


distill.save_pretrained_atomic = _recorded

if __name__ == "__main__":
    sys.exit(cli.main())
