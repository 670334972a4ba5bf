"""When a command draws progress bars, and how it silences every library's bars when not.

A bar is for a person at a terminal: none with ``--no-progress`` or when stdout or stderr is
not a terminal (a pipe, a file, a CI log), where each redraw would be a line of noise.
"""

from __future__ import annotations

import os
import sys

# Read by tqdm (every bar of transformers' GGUF conversion, of datasets and of the hub) and by
# the Hugging Face libraries when each is imported: set before any of them is.
NO_BARS_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def bars_wanted(no_progress: bool) -> bool:
    return not no_progress and sys.stdout.isatty() and sys.stderr.isatty()


def silence_progress_bars() -> None:
    """No bar from here on in this process (and its children). Libraries already imported
    are switched off through their own switches as well."""
    os.environ.update(NO_BARS_ENV)
    if "transformers" in sys.modules:  # its "Loading weights" bars: transformers.utils.logging
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
