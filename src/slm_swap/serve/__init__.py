"""`slm-swap serve`: the local SLM behind the OpenAI chat-completions protocol.

Applications (Mastra, the openai SDKs, agent frameworks) call it as they called the hosted model:

* `POST /v1/chat/completions` — the request's `model` picks the base model or a named adapter, as vLLM
  does; `tools` are shown to the model exactly as in evaluation and training, and its
  `<tool_call name="...">{...}</tool_call>` answer comes back as OpenAI `tool_calls`;
* `POST /openai/deployments/<name>/chat/completions?api-version=...` — the same, Azure-shaped (the
  deployment name picks the model; the key goes in the `api-key` header), so `--model-kind azure` can
  point at it;
* `GET /v1/models`, `GET /health`.

Answers come from the one generation engine (`engine.py`) that `eval` uses: the same model and adapter
loading, prompt rendering, grammars and stop rules, so a request gives the text `eval` would. Concurrent
requests are queued and answered in shared `generate` calls (one batch per model), so many clients are
served faster than one at a time; a client that hangs up (a closed stream, a request given up on) has its
generation stopped at the next decoding step, so it holds no one up. An agent's second turn works:
assistant messages with `tool_calls` are shown as the `<tool_call>` blocks the model itself writes, and
`tool` messages as `<tool_response name="...">...</tool_response>` in a user turn.

`tool_choice` (required / a named tool) and `response_format` (json_schema / json_object) are honoured by
grammar-constrained decoding (`choose_grammar`); `stream: true` sends tokens as server-sent events while
the request shares its batch.

The package, by concern: `schema` (the API's request and response objects), `render` (a request into the
engine's prompt and grammar, a completion into the response), `batcher` (requests queued into shared
batches), `stream` (server-sent events), `app` (the routes, auth and errors).
"""

from slm_swap.serve.app import MAX_BODY_BYTES, create_app
from slm_swap.serve.batcher import Batcher
from slm_swap.serve.render import choose_grammar, evaluation_request, render_messages, to_response
from slm_swap.serve.schema import ChatRequest

__all__ = [
    "MAX_BODY_BYTES",
    "Batcher",
    "ChatRequest",
    "choose_grammar",
    "create_app",
    "evaluation_request",
    "render_messages",
    "to_response",
]
