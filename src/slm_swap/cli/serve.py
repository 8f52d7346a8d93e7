"""The serve command: the SLM over the OpenAI chat-completions API."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import click
from click.core import ParameterSource

from slm_swap import settings
from slm_swap.cli.options import (
    gpus_to_use,
    option,
)
from slm_swap.cli.render import (
    stderr,
    stdout,
)
from slm_swap.errors import SlmSwapError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True)
@option(settings.MODEL_PATH)
@click.option(
    "--lora",
    "adapters",
    multiple=True,
    metavar="NAME=DIR",
    help="A LoRA adapter served as model NAME (repeatable).",
)
@option(settings.SERVE_API_KEY, "--require-api-key", "api_key")
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Most requests answered in one generate call.",
)
@option(settings.CONSTRAINED)
@option(settings.PROTOCOL)
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(["slm-swap", "vllm"]),
    default="slm-swap",
    show_default=True,
    help="vllm: run `vllm serve` on GPUs with the same model names (scale-out for large evaluations).",
)
@option(settings.GPUS, help="vllm: " + settings.GPUS.help)
@option(settings.DRY_RUN, help="vllm: print the command instead of running it.")
@option(settings.LOAD_IN)
def serve(
    host: str,
    port: int,
    model_path: str | None,
    adapters: tuple[str, ...],
    api_key: str | None,
    max_batch: int,
    constrained: bool,
    protocol: str,
    engine_name: str,
    gpus: int | None,
    dry_run: bool,
    load_in: str,
) -> None:
    """Serve the SLM (and adapters) over the OpenAI chat-completions API, batching concurrent requests."""
    from slm_swap.local.models import resolve_model_path

    _refuse_empty_key(api_key, os.environ)
    named = _named_adapters(adapters)
    native = protocol == "native"
    if engine_name == "vllm":
        from slm_swap.scaleout import exec_vllm

        if constrained:
            raise SlmSwapError(
                f"{settings.CONSTRAINED} is slm-swap's own engine; vLLM constrains response_format and "
                f"tool_choice itself\n  fix: drop {settings.CONSTRAINED} with --engine vllm"
            )
        if load_in not in ("auto", "bfloat16"):
            raise SlmSwapError(
                f"{settings.LOAD_IN} {load_in}: vLLM serves the model unquantised in bfloat16 here\n"
                f"  fix: drop {settings.LOAD_IN} with --engine vllm (compare its runs with eval "
                f"{settings.LOAD_IN} bfloat16)"
            )
        model = resolve_model_path(model_path)
        parser = None
        if native:
            from transformers import AutoTokenizer

            from slm_swap.local.templates import VLLM_PARSERS, family_of

            template_family = family_of(AutoTokenizer.from_pretrained(model), model.name)
            if template_family not in VLLM_PARSERS:
                raise SlmSwapError(
                    f"{settings.PROTOCOL} native with --engine vllm: {model.name} reads its calls by its "
                    "response template, which vLLM has no parser name for\n  fix: serve it with slm-swap's "
                    "own engine"
                )
            parser = VLLM_PARSERS[template_family]
        shown = exec_vllm(
            model,
            named,
            host,
            port,
            gpus_to_use(gpus),
            api_key,
            environment=os.environ,
            dry_run=dry_run,
            tool_parser=parser,
        )
        stdout.print(shown, markup=False, highlight=False, soft_wrap=True)
        return
    try:
        import uvicorn
    except ImportError as e:
        raise SlmSwapError("serve needs the serve extra\n  fix: pip install 'slm-swap[serve]'") from e
    from slm_swap.local.engine import Engine
    from slm_swap.serve import Batcher, create_app
    from slm_swap.tracing import tracer_if_configured

    tracing = tracer_if_configured(os.environ)
    tracer = tracing.tracer
    stderr.print(tracing.says)
    # Grammars serve response_format and tool_choice whatever --constrained says: the kernels are needed.
    engine = Engine(resolve_model_path(model_path), named, load_in=load_in, kernels=True)
    family: str | None = None
    if native:
        from slm_swap.local.templates import family_of

        family = family_of(engine.tokenizer, engine.base_name)
        if constrained:
            engine.grammars.native_calls(family, [])  # a format without a grammar is refused at start
    batcher = Batcher(engine, max_batch=max_batch)
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        stderr.print(
            f"warning: serving on {host} without {settings.SERVE_API_KEY}: anyone who can reach it can use it"
        )
    stderr.print(
        f"serving {', '.join(batcher.engine.model_names)} at http://{host}:{port}/v1"
        + (" (grammar-constrained)" if constrained else "")
        + (f" (native tool calls, {family} format)" if family else "")
    )
    try:
        app = create_app(batcher, api_key=api_key, tracer=tracer, constrained=constrained, family=family)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        batcher.close()
        if tracer is not None:
            tracer.flush()
            tracer.close()


def _refuse_empty_key(api_key: str | None, environment: Mapping[str, str]) -> None:
    """Refuses an empty or blank key, from the flag or from its variable: it would turn authentication
    off without a word (click reads an empty variable as unset, and the server takes an empty key for
    none)."""
    flag, variable = settings.SERVE_API_KEY.flag, settings.SERVE_API_KEY.envvar
    source = click.get_current_context().get_parameter_source("api_key")
    if api_key is None:
        api_key = environment.get(str(variable))
        source = ParameterSource.ENVIRONMENT
    if api_key is None or api_key.strip():
        return
    if source is ParameterSource.ENVIRONMENT:
        raise SlmSwapError(
            f"{variable} is set but empty, which would serve with no authentication\n"
            f"  fix: set {variable} to a key, or unset it (unset {variable}) to serve without one"
        )
    raise SlmSwapError(
        f"{flag} is empty, which would serve with no authentication\n"
        f'  fix: give it a key ({flag} "$(openssl rand -hex 16)"), or leave {flag} out to serve without one'
    )


def _named_adapters(items: tuple[str, ...]) -> dict[str, Path]:
    named: dict[str, Path] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SlmSwapError(f"--lora {item!r}: expected NAME=DIR, e.g. toolcall=04_ft/adapter_toolcall")
        if not (Path(folder) / "adapter_config.json").is_file():
            raise SlmSwapError(f"--lora {item}: no LoRA adapter at {folder} (no adapter_config.json)")
        named[name] = Path(folder)
    return named
