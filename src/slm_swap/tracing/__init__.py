"""Tracing of runs to Langfuse, and the check that the traces actually arrived.

Commands that run a model or decide (eval, train, compare, ...) call `make_tracer(env)` before doing any
work. It refuses to start (`ConfigError`) unless LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and
LANGFUSE_HOST are set, or LANGFUSE_DISABLED=1 asks for a run without tracing (`NullTracer`); `serve`
traces only when configured (`tracer_if_configured`). The environment is passed in by the caller (the
CLI); nothing here reads `os.environ`.

The package, by concern:

* `base.py`: the `Tracer`, `RunTrace` and `GenerationTrace` interfaces, and `Generation`, the record of
  one model call.
* `config.py`: the LANGFUSE_* environment, read once (`LangfuseConfig`), and the checked project
  (`LangfuseSettings`); the only reader of those variables, datasets included.
* `factory.py`: which tracer a command gets.
* `null.py`: `NullTracer`.
* `langfuse.py`: `LangfuseTracer`, through the official SDK; `client.py`: its SDK client and
  OpenTelemetry provider.
* `delivery.py`: the counting behind `flush()`'s `DeliveryReport` (the SDK reports no failed delivery).

Importing the package is cheap: langfuse, OpenTelemetry, httpx and requests are imported only when a
`LangfuseTracer` is built.
"""

from slm_swap.tracing.base import Generation, GenerationTrace, ItemOutcome, RunTrace, Tracer
from slm_swap.tracing.config import LangfuseConfig, LangfuseSettings
from slm_swap.tracing.delivery import DeliveryReport
from slm_swap.tracing.factory import OptionalTracing, make_tracer, tracer_if_configured
from slm_swap.tracing.langfuse import LangfuseTracer
from slm_swap.tracing.null import NullTracer

__all__ = [
    "DeliveryReport",
    "Generation",
    "GenerationTrace",
    "ItemOutcome",
    "LangfuseConfig",
    "LangfuseSettings",
    "LangfuseTracer",
    "NullTracer",
    "OptionalTracing",
    "RunTrace",
    "Tracer",
    "make_tracer",
    "tracer_if_configured",
]
