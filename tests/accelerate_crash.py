"""``spectralkd`` that crashes: the main process kills itself (SIGKILL) right after the checkpoint of
global batch ``$SPECTRALKD_TEST_CRASH_AFTER``, as a lost machine would. Launched by
``tests/test_accelerate.py`` under ``torchrun``; the arguments are ``spectralkd``'s."""

from __future__ import annotations

import os
import signal
import sys

from spectralkd_tutorial.cli import app as cli

from spectralkd_tutorial.pipelines import steps
from spectralkd_tutorial.engine import training

CRASH_AFTER = int(os.environ["SPECTRALKD_TEST_CRASH_AFTER"])


class CrashAfter(training.Callback):
    def on_step(self, loop: training.Loop) -> None:
        if loop.batch_index == CRASH_AFTER:
            loop.save_checkpoint()  # every process; the main one writes it, then all wait
            if loop.accelerator.is_main_process:
                os.kill(os.getpid(), signal.SIGKILL)


def _fit(*args, callbacks=(), **kwargs):
    return training.fit(*args, callbacks=[*callbacks, CrashAfter()], **kwargs)


steps.fit = _fit

if __name__ == "__main__":
    sys.exit(cli.main())
