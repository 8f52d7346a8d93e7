"""Every setting once: its flag, its environment variable, its default, its range and its help.

A configuration dataclass declares its fields with `field(SETTING)`, so the field's default is the
setting's; the CLI makes its options from the same settings (`cli.options`), from a whole configuration
at once (`options_of`) or one at a time. A flag therefore means one thing, with one default, in every
command that takes it. Library messages name a setting by the setting (`f"{LORA_DROPOUT} must be ..."`,
which reads as its flag), never by a flag written out, so a renamed flag cannot leave a stale message.
Secrets (API keys) come only from the environment or a flag and are never shown or written anywhere.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.errors import ConfigError
from slm_swap.types import SPLITS, TRACKS


@dataclass(frozen=True)
class Setting:
    flag: str
    default: Any = None
    envvar: str | None = None
    help: str = ""
    secret: bool = False  # never shown as a default, never written
    kind: type | None = None  # the value's type [default: the default's type, else str]
    choices: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    metavar: str | None = None

    def __str__(self) -> str:
        return self.flag

    @property
    def name(self) -> str:
        """The Python name the CLI gives the value (and the configuration field that holds it)."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def value_type(self) -> type:
        if self.kind is not None:
            return self.kind
        return str if self.default is None else type(self.default)


def field(setting: Setting) -> Any:
    """A configuration dataclass field whose default, flag and help are the setting's (a secret's value is
    left out of the dataclass's repr)."""
    return dataclasses.field(default=setting.default, repr=not setting.secret, metadata={"setting": setting})


def setting_of(config: Any, name: str) -> Setting:
    """The setting a configuration field was declared with."""
    found: Setting = {f.name: f for f in dataclasses.fields(config)}[name].metadata["setting"]
    return found


# Where rows come from (prepare, run).
SOURCES = ("xlam", "bfcl", "openai", "langfuse")
SOURCE = Setting(
    "--source",
    "xlam",
    None,
    "xLAM function-calling file, BFCL data from the bfcl-eval wheel, or a team's own conversations: in "
    "OpenAI's chat format (JSON Lines of messages and tools), or a Langfuse dataset.",
    choices=SOURCES,
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
    kind=Path,
)
BFCL_CATEGORY = Setting("--bfcl-category", "simple_python", None, "BFCL category.")
TRAIN_SIZE = Setting("--train-size", 32, None, "Rows in the train split.", min=0)
VAL_SIZE = Setting("--val-size", 8, None, "Rows in the validation split.", min=0)
TEST_SIZE = Setting("--test-size", 8, None, "Rows in the test split.", min=0)
MAX_TEST_SIZE = Setting(
    "--max-test-size",
    None,
    None,
    "Evaluate in rounds from a test pool of this many rows: --test-size rows first, then twice as many "
    "each round, stopping as soon as every core metric is settled (docs/scoring.md).",
    kind=int,
    min=1,
)
SKIP_INVALID = Setting(
    "--skip-invalid", False, None, "Leave bad rows out (and count them) instead of failing."
)
# Rows whose answer is no tool call (prepare, run).
NO_CALL_ROW_CHOICES = ("keep", "drop")
NO_CALL_ROWS = Setting(
    "--no-call-rows",
    "keep",
    None,
    "The source's rows whose answer is no tool call (a reply in text in a team's traffic, BFCL's "
    "irrelevance categories): keep them as examples, or drop them (left out and counted).",
    choices=NO_CALL_ROW_CHOICES,
)
DONORS = ("random", "near")
IRRELEVANCE_DONORS = Setting(
    "--irrelevance-donors",
    "random",
    None,
    "Where a made no-call row that offered only the tools its answer calls gets its offer from: random, "
    "another unused row's tools; near, the unused row whose tools are closest in topic to the removed ones "
    "(by the words of their names and descriptions) without being the same tool, so that one tool offered "
    "stops meaning 'call it' for near-miss tools too.",
    choices=DONORS,
)
IRRELEVANCE_SHARE = Setting(
    "--irrelevance-share",
    0.0,
    None,
    "Share, in [0, 1), of the train and val rows that are no-call rows made from call rows in no split by "
    "removing the tools their answer calls (as Hammer's xlam-irrelevance set; a row offering only those "
    "is offered another unused row's tools); the test split never "
    "gets any.",
    metavar="FLOAT",
)

# Seeds, each named for what it seeds (all 42, as the specification has it); `--seed` sets the first.
SPLIT_SEED = 42  # which source rows go into the splits
DECODING_SEED = 42  # the hosted API's `seed` and vLLM's --seed (local decoding is greedy: nothing to seed)
TRAINING_SEED = 42  # LoRA's initialisation and the order of training rows
REPORT_SEED = 42  # which of the examples the models agree on the report's browser samples
SEED = Setting("--seed", SPLIT_SEED, None, "Sampling seed for the splits.")

# The workspace (every command that reads or writes it).
DATASET_DIR = Setting(
    "--dataset-dir",
    Path("02_dataset"),
    "SLM_SWAP_DATASET_DIR",
    "Folder of prepared splits ({track}/{split}.jsonl).",
)
# The dataset folder as prepare names what it writes (it reads DATASET_DIR's variable).
OUT_DIR = Setting("--out-dir", DATASET_DIR.default, None, "Where the splits go ({track}/{split}.jsonl).")
FT_DIR = Setting(
    "--ft-dir", Path("04_ft"), "SLM_SWAP_FT_DIR", "Folder of fine-tuned adapters (adapter_{track})."
)
EVAL_DIR = Setting(
    "--eval-dir", Path("05_eval"), "SLM_SWAP_EVAL_DIR", "Folder of run, decision and verdict files."
)
TRACK = Setting("--track", None, None, "Which track.", choices=TRACKS)
TRACKS_SETTING = Setting("--tracks", TRACKS, None, "Tracks to decide (repeat).", choices=TRACKS)
SPLIT = Setting("--split", "test", None, "Which split.", choices=SPLITS)
OUT = Setting("--out", None, None, "The file (or folder) the command writes.", kind=Path)
FORCE = Setting("--force", False, None, "Recompute even where the output is there and up to date.")
SAVE = Setting("--save", False, None, "Write each model's run file to the eval folder, as eval does.")

# The model asked (eval, infer, live, smoke, label, run, serve).
RUNNING_KINDS = ("slm", "azure", "openai")  # the kinds that run a model
MODEL_KINDS = (*RUNNING_KINDS, "replay")  # replay only reads stored outputs
MODEL_KIND = Setting(
    "--model-kind",
    None,
    None,
    "slm (local transformers), azure, openai (any OpenAI-compatible endpoint) or replay (stored outputs).",
    choices=MODEL_KINDS,
)
MODELS = Setting(
    "--models",
    ("azure", "slm"),
    None,
    "Models to run side by side on the same examples (repeat: --models azure --models slm).",
    choices=RUNNING_KINDS,
)
MODEL_PATH = Setting(
    "--model-path",
    None,
    "SLM_MODEL_PATH",
    "The SLM checkpoint folder [default: models/SmolLM2-135M-Instruct].",
)
EXAMPLE_ID = Setting("--id", None, None, "The dataset row to ask (default: the split's first row).")
PROMPT = Setting(
    "--prompt", None, None, "Ask this free text instead of a dataset row (with the track's system prompt)."
)
ADAPTER = Setting("--adapter", None, None, "slm: a LoRA adapter folder to load.", kind=Path)
BATCH_SIZE = Setting("--batch-size", 8, None, "slm: prompts per generate call.", min=1)
MAX_NEW_TOKENS = Setting("--max-new-tokens", 384, None, "Longest answer, in tokens.", min=1)
# An answer's limit when an OpenAI-API client names none (`serve`).
API_MAX_TOKENS = 512
LOADS = ("auto", "8bit", "bfloat16", "float32")
LOAD_IN = Setting(
    "--load-in",
    "auto",
    None,
    "slm: how the weights load for inference. auto: 8-bit (bitsandbytes) with device_map=auto on CUDA, "
    "as the specification asks; float32 on a CPU. bfloat16: unquantised (faster than 8-bit on a GPU with "
    "room).",
    choices=LOADS,
)
CONSTRAINED = Setting(
    "--constrained",
    False,
    None,
    "slm: grammar-constrained decoding (xgrammar): answers in the track's format always parse. serve: "
    "also for tool_choice=auto and for requests in the evaluation format (tool_choice required or named "
    "and response_format are always honoured).",
)
PROTOCOLS = ("prompt", "native")  # protocol.py says what each means
PROTOCOL = Setting(
    "--protocol",
    "prompt",
    "SLM_SWAP_PROTOCOL",
    "How the model is asked. prompt: slm-swap's own text format for every model (tools in the user "
    "message, calls as text), like for like. native: the way the model is used, hosted through the API's "
    "tools (tool_calls) or response_format, a local checkpoint through its chat template's tool format.",
    choices=PROTOCOLS,
)
BOTH_PROTOCOLS = Setting(
    "--both-protocols",
    False,
    None,
    "run: decide under --protocol prompt, and ask each side natively too, for the report's comparison "
    "of the two protocols (docs/protocol.md).",
)
BASE_URL = Setting(
    "--base-url", None, "OPENAI_BASE_URL", "openai: the endpoint, e.g. http://127.0.0.1:8000/v1."
)
API_KEY = Setting(
    "--api-key",
    None,
    "OPENAI_API_KEY",
    "openai: the key the client sends (read from the environment; never written anywhere).",
    True,
)
MODEL = Setting("--model", None, "OPENAI_MODEL", "openai: the model name to request.")
CONCURRENCY = Setting("--concurrency", 8, None, "azure/openai: requests in flight.", min=1)
TIMEOUT = Setting("--timeout", 60.0, None, "azure/openai: seconds per request attempt.", min=0.1)
MAX_RETRIES = Setting(
    "--max-retries",
    5,
    None,
    "azure/openai: retries of 429/5xx/timeouts (with backoff, honouring Retry-After).",
    min=0,
)
# The Batch API route (eval, label, run): answers within 24 hours, at half the price of one request at a time.
HOSTED_BATCH = Setting(
    "--hosted-batch",
    False,
    None,
    "azure/openai: send the rows through the provider's Batch API (half the price; answers within 24 h) "
    "instead of one request at a time. The same requests, so the same run; a killed run picks its batch "
    "up again.",
)
BATCH_POLL = Setting(
    "--batch-poll", 30.0, None, "--hosted-batch: seconds between checks of the batch's status.", min=0.01
)
PREDICTIONS = Setting(
    "--predictions",
    None,
    None,
    "replay: JSON Lines of {id, output}, or a run file to score again.",
    kind=Path,
)
# Azure OpenAI is configured by the environment alone (the specification's variables). Without
# AZURE_API_KEY, Azure is asked with a Microsoft Entra ID token (keyless, `slm-swap[azure]`); the v1 API
# (AZURE_ENDPOINT `https://<resource>.openai.azure.com/openai/v1/`) takes no AZURE_API_VERSION.
AZURE_VARS = ("AZURE_ENDPOINT", "AZURE_DEPLOYMENT", "AZURE_API_KEY", "AZURE_API_VERSION")
AZURE_V1_URL = re.compile(r"^(?P<base>https?://[^/?#]+(?:/[^?#]*)?/openai/v1)(?:/chat/completions)?/?$")


@dataclass(frozen=True)
class AzureSettings:
    endpoint: str
    deployment: str
    api_key: str | None = dataclasses.field(default=None, repr=False)  # None: Entra ID (keyless)
    api_version: str | None = None  # None: only for the v1 API, which takes none

    @property
    def v1(self) -> bool:
        """Whether AZURE_ENDPOINT is the v1 API (`.../openai/v1/`): no api-version, the deployment as the
        request's model."""
        return AZURE_V1_URL.match(self.endpoint) is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AzureSettings:
        """The variables, read at the command line's edge; a ConfigError names those missing (never the
        key: without one, Entra ID signs the requests)."""
        endpoint, deployment, api_key, api_version = (env.get(v, "").strip() for v in AZURE_VARS)
        found = cls(endpoint, deployment, api_key or None, api_version or None)
        missing = [v for v, value in zip(AZURE_VARS[:2], (endpoint, deployment), strict=True) if not value]
        if not api_version and not found.v1:
            missing.append("AZURE_API_VERSION")
        if missing:
            raise ConfigError(
                f"{MODEL_KIND} azure needs {', '.join(missing)}\n"
                "  fix: export AZURE_ENDPOINT and AZURE_DEPLOYMENT, AZURE_API_VERSION unless AZURE_ENDPOINT "
                "is the v1 API (https://<resource>.openai.azure.com/openai/v1/), and AZURE_API_KEY unless "
                "you sign in with Entra ID (pip install 'slm-swap[azure]')"
            )
        return found

    @classmethod
    def if_set(cls, env: Mapping[str, str]) -> AzureSettings | None:
        """The settings when AZURE_ENDPOINT and AZURE_DEPLOYMENT are set (a ConfigError when what the
        endpoint needs besides is missing), else None (`run` then looks elsewhere)."""
        return cls.from_env(env) if all(env.get(v, "").strip() for v in AZURE_VARS[:2]) else None


# Deciding (compare, run, report).
DELTA = Setting(
    "--delta", 0.01, None, "Fine-tune when the SLM trails on any core metric by more than this.", min=0
)
HOSTED_RUN = Setting(
    "--azure", None, None, "Run file of the hosted model (whatever kind produced it).", kind=Path
)
SLM_RUN = Setting("--slm", None, None, "Run file of the SLM.", kind=Path)
PRICE_IN = Setting(
    "--price-per-1k-input",
    0.0025,
    None,
    "Hosted price per 1k prompt tokens (the report's cost, and the estimate before a hosted run).",
    min=0,
)
PRICE_OUT = Setting("--price-per-1k-output", 0.01, None, "Hosted price per 1k completion tokens.", min=0)
HOSTED_KINDS = ("auto", "azure", "openai", "stand-in")
HOSTED_KIND = Setting(
    "--hosted-kind",
    "auto",
    None,
    "run: the hosted model. auto: Azure when AZURE_* are set, else an OpenAI-compatible --base-url, else "
    "a local stand-in (the SLM served, grammar-constrained).",
    choices=HOSTED_KINDS,
)
STANDIN_PORT = Setting(
    "--standin-port", 8765, None, "run: the local stand-in's port (127.0.0.1).", min=1, max=65535
)

# Fine-tuning (train, run): the specification's fixed hyperparameters are the defaults.
LORA_R = Setting("--lora-r", 64, None, "LoRA rank.", min=1)
LORA_ALPHA = Setting("--lora-alpha", 16, None, "LoRA alpha (scale alpha/r).", min=1)
LORA_DROPOUT = Setting("--lora-dropout", 0.1, None, "LoRA dropout, in [0, 1).", min=0, max=0.999)
LEARNING_RATE = Setting("--lr", 2e-4, None, "Learning rate.", min=0)
EPOCHS = Setting("--epochs", 1.0, None, "Passes over the train split.", min=0.01)
MAX_LENGTH = Setting("--max-length", 2048, None, "Longest training row, in tokens.", min=16)
TRAIN_BATCH_SIZE = Setting("--train-batch-size", 4, None, "Training rows per step, per device.", min=1)
GRADIENT_ACCUMULATION = Setting(
    "--gradient-accumulation", 1, None, "Steps whose gradients add up before each update.", min=1
)
LOAD_IN_4BIT = Setting(
    "--load-in-4bit", False, None, "QLoRA (CUDA only); the default on CUDA is an 8-bit base."
)
SAVE_STEPS = Setting("--save-steps", 10, None, "Checkpoint every N steps.", min=1)
PRECISIONS = ("auto", "float32", "bfloat16")
PRECISION = Setting(
    "--precision",
    "auto",
    None,
    "The arithmetic. auto: bfloat16 mixed (float32 weights) on CUDA, float32 on a CPU; bfloat16 also on a "
    "CPU with native bfloat16 (AVX512-BF16, AMX), faster there but learning less per step.",
    choices=PRECISIONS,
)

MASK_NAMES = Setting(
    "--mask-names",
    0.0,
    None,
    "Share, in [0, 1], of the training rows whose tool and parameter names are replaced by random "
    "identifiers (in the tools, the request and the answer; the tools shuffled), so the model learns from "
    "descriptions rather than names (Hammer's function masking). Never the validation or test rows.",
    min=0,
    max=1,
    metavar="FLOAT",
)
OBJECTIVES = ("sft", "sft+dpo")
OBJECTIVE = Setting(
    "--objective",
    "sft",
    None,
    "sft: supervised fine-tuning on the gold answers. sft+dpo: then a preference step (DPO) on the "
    "training rows the fine-tuned model still gets wrong: the gold answer chosen over its own answer (a "
    "call where none is right, no call where one is, a wrong tool or value).",
    choices=OBJECTIVES,
)
DPO_BETA = 0.1  # TRL's default: how far the preference step may move from the fine-tuned model

RESUME = Setting("--resume", False, None, "Continue from the last checkpoint in the adapter folder.")

# GPUs (launch, serve --engine vllm).
GPUS = Setting(
    "--gpus",
    None,
    None,
    "GPUs to use [default: every GPU visible: CUDA_VISIBLE_DEVICES's, else the machine's].",
    kind=int,
    min=1,
)
STRATEGIES = ("parallel", "sequential")
STRATEGY = Setting(
    "--strategy",
    None,
    None,
    "How the two tracks' fine-tunes share the GPUs. parallel: structured on the first half and toolcall "
    "on the second, at once; sequential: each on all of them, one after the other.",
    choices=STRATEGIES,
)
DRY_RUN = Setting("--dry-run", False, None, "Print the commands instead of running them.")

# Serving.
SERVE_API_KEY = Setting(
    "--require-api-key",
    None,
    "SLM_SWAP_API_KEY",
    "Require this bearer token (or Azure-style api-key header) on every request.",
    True,
)
