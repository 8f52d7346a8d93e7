"""Every shared setting once: its flag, its environment variable, its default and its help.

The CLI builds its options from these (`cli.option`), and library defaults read the same values, so a
flag means the same thing, with the same default, in every command that takes it. Secrets (API keys)
come only from the environment or a flag and are never written anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Setting:
    flag: str
    default: Any = None
    envvar: str | None = None
    help: str = ""
    secret: bool = False  # never shown as a default, never written


SOURCES = ("xlam", "bfcl", "openai", "langfuse")
SOURCE = Setting(
    "--source",
    "xlam",
    None,
    "xLAM function-calling file, BFCL data from the bfcl-eval wheel, or a team's own conversations: in "
    "OpenAI's chat format (JSON Lines of messages and tools), or a Langfuse dataset.",
)
LANGFUSE_DATASET = Setting(
    "--langfuse-dataset",
    None,
    None,
    "langfuse: the dataset's name (read with LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY).",
)
DATASET_PATH = Setting(
    "--dataset-path",
    None,
    None,
    "xLAM: the JSON/JSONL file [default: the shipped sample]. BFCL: the bfcl-eval wheel or its "
    "bfcl_eval/data folder [default: fetched with pip, without dependencies]. openai: the JSON Lines file.",
)
BFCL_CATEGORY = Setting("--bfcl-category", "simple_python", None, "BFCL category.")
DATASET_DIR = Setting(
    "--dataset-dir",
    Path("02_dataset"),
    "SLM_SWAP_DATASET_DIR",
    "Folder of prepared splits ({track}/{split}.jsonl).",
)
FT_DIR = Setting(
    "--ft-dir", Path("04_ft"), "SLM_SWAP_FT_DIR", "Folder of fine-tuned adapters (adapter_{track})."
)
EVAL_DIR = Setting(
    "--eval-dir", Path("05_eval"), "SLM_SWAP_EVAL_DIR", "Folder of run, decision and verdict files."
)
MODEL_PATH = Setting(
    "--model-path",
    None,
    "SLM_MODEL_PATH",
    "The SLM checkpoint folder [default: models/SmolLM2-135M-Instruct].",
)
BATCH_SIZE = Setting("--batch-size", 8, None, "slm: prompts per generate call.")
MAX_NEW_TOKENS = Setting("--max-new-tokens", 384, None, "Longest answer, in tokens.")
# An answer's limit when an OpenAI-API client names none (`serve`; the hosted client made on its own).
API_MAX_TOKENS = 512
LOADS = ("auto", "8bit", "bfloat16", "float32")
LOAD_IN = Setting(
    "--load-in",
    "auto",
    None,
    "slm: how the weights load for inference. auto: 8-bit (bitsandbytes) with device_map=auto on CUDA, "
    "as the spec asks; float32 on a CPU. bfloat16: unquantised (faster than 8-bit on a GPU with room).",
)
CONSTRAINED = Setting(
    "--constrained", False, None, "slm: grammar-constrained decoding (xgrammar); answers always parse."
)
BASE_URL = Setting(
    "--base-url", None, "OPENAI_BASE_URL", "openai: the endpoint, e.g. http://127.0.0.1:8000/v1."
)
API_KEY = Setting(
    "--api-key",
    None,
    "OPENAI_API_KEY",
    "openai: the key (read from the environment; never written anywhere).",
    True,
)
MODEL = Setting("--model", None, "OPENAI_MODEL", "openai: the model name to request.")
CONCURRENCY = Setting("--concurrency", 8, None, "azure/openai: requests in flight.")
TIMEOUT = Setting("--timeout", 60.0, None, "azure/openai: seconds per request attempt.")
MAX_RETRIES = Setting(
    "--max-retries",
    5,
    None,
    "azure/openai: retries of 429/5xx/timeouts (with backoff, honouring Retry-After).",
)
DELTA = Setting("--delta", 0.01, None, "Fine-tune when the SLM trails on any core metric by more than this.")
# Seeds, each named for what it seeds (all the spec's 42); `--seed` sets the first.
SPLIT_SEED = 42  # which source rows go into the splits
DECODING_SEED = 42  # the hosted API's `seed` and vLLM's --seed (local decoding is greedy: it needs none)
TRAINING_SEED = 42  # LoRA's initialisation and the order of training rows
BOOTSTRAP_SEED = 42  # the paired bootstrap's resamples (`compare`)
REPORT_SEED = 42  # which of the examples the models agree on the report's browser samples
SEED = Setting("--seed", SPLIT_SEED, None, "Sampling seed for the splits.")
PRICE_IN = Setting(
    "--price-per-1k-input", 0.0025, None, "Hosted price per 1k prompt tokens (the report's cost)."
)
PRICE_OUT = Setting("--price-per-1k-output", 0.01, None, "Hosted price per 1k completion tokens.")
SERVE_API_KEY = Setting(
    "--api-key",
    None,
    "SLM_SWAP_API_KEY",
    "Require this bearer token (or Azure-style api-key header) on every request.",
    True,
)
