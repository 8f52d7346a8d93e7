"""A quiet console: by default the libraries keep their progress bars, advice and warnings to themselves.

slm-swap shows one line or one progress bar per stage (with rate and time left); transformers' loading
and tokenising bars, the hub's download bars, datasets' map bars, deprecation and advisory warnings and
the trainer's per-step dictionaries are held back. `slm-swap --verbose` (or `SLM_SWAP_VERBOSE=1`) lets
them through; the code that prints asks the command's `Runtime`, never the environment.

The quiet settings are the libraries' own environment variables (`QUIET_ENV`), which they read from this
process's environment, some as they are imported: that is the one way to set them, so `configure` puts
them there, and processes slm-swap starts (the stand-in server, training launchers) inherit them.
Verbosity reaches those processes explicitly, in the environment they are given
(`Runtime.child_environment`).
"""

from __future__ import annotations

import logging
import os
import re
import warnings

QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # the hub's and transformers' bars (loading weights)
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # datasets' map and tokenising bars
    "TQDM_DISABLE": "1",  # bars libraries draw with tqdm directly (transformers' GGUF conversion)
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",  # else a warning at every fork of a process that has tokenised
    "PYTHONWARNINGS": "ignore",  # for the processes started from here
}
LIBRARIES = (
    "transformers",
    "datasets",
    "peft",
    "trl",
    "accelerate",
    "torch",
    "bitsandbytes",
    "httpx",
    "urllib3",
)
# bitsandbytes says this at every 8-bit matrix product whose input is not float16 (each layer, each
# token), as a warning in some versions and a log record in others: noise even under --verbose.
CAST_NOTICE = r"MatMul8bitLt: inputs will be cast from .* to float16"


class _HideCastNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return re.match(CAST_NOTICE, record.getMessage()) is None


def configure(verbose_output: bool) -> None:
    """Sets the console for this process and the ones it starts (before any library is imported)."""
    warnings.filterwarnings("ignore", message=CAST_NOTICE)
    for name in ("bitsandbytes", "bitsandbytes.autograd._functions"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideCastNotice) for f in logger.filters):
            logger.addFilter(_HideCastNotice())
    if verbose_output:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
