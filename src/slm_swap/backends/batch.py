"""The Batch API route of a hosted model: a run's requests sent as one file and answered within 24 hours, at
half the price of one request at a time (OpenAI's `/v1/files` and `/v1/batches`; Azure OpenAI's global
batch, through the same SDK calls on its client).

Each request is a line whose body is the live route's (`HostedBackend.body`), and each answer is read by
the live route's reader (`HostedBackend.completion`), so a batch run and a live run of the same rows score
the same. `--hosted-batch` therefore changes nothing a run's identity holds (the identity rule: settings
that do not change the output are not part of it): a run file or journal of either route is kept or
resumed by the other. The run file's settings say `"route": "batch"`, and the report prices such a run at
half the price options (`report.Pricing`).

What a killed process needs is kept beside the output (`<out>.batch.json`, written atomically after each
upload and each batch created, removed once every answer is handed over): the endpoint, and per batch its
input file, its id and its requests' ids. A request's id (`custom_id`) is the digest of its body, so a
rerun finds the batch that already holds a request and retrieves it instead of creating another; only the
requests no batch holds are sent in a new one. Rows already journaled are not among the requests at all.

A request the batch answers with an error (a line of its error file, a status other than 200, a body that
is not a chat completion) becomes that row's error, as a failed request does on the live route; so does a
request an expired or cancelled batch never answered. A batch refused as a whole (`failed`) stops the run
with the provider's reasons, and a rerun sends its requests again. A row's latency is the time from its
batch's creation to its answers' download: what the row waited.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from slm_swap import settings
from slm_swap.backends.config import HostedConfig
from slm_swap.backends.hosted import HostedBackend, _describe_error, _fatal, _Malformed, _Reader
from slm_swap.cost import Estimate
from slm_swap.errors import ConfigError, SlmSwapError
from slm_swap.files import atomic_writer
from slm_swap.protocol import Request
from slm_swap.types import Completion, Example

if TYPE_CHECKING:
    from slm_swap.report import Pricing

STATE_FORMAT = "slm-swap.batch/1"
MAX_LINES = 50_000  # OpenAI's limit of requests per batch (Azure's is 100,000)
MAX_BYTES = 190_000_000  # below both providers' 200 MB per input file
FINISHED = ("completed", "failed", "expired", "cancelled")
T = TypeVar("T")


def state_path(out: Path) -> Path:
    """The side file that keeps an output's batches while they are under way."""
    return out.with_name(out.name + ".batch.json")


@dataclass
class _Part:
    """One batch of the run: its requests' ids, its input file once uploaded, its id once created, and
    when it was created (seconds since the epoch)."""

    ids: list[str]
    input_file_id: str | None = None
    batch_id: str | None = None
    sent_at: float | None = None
    status: str = ""
    counts: tuple[int, int, int] = (0, 0, 0)  # completed, failed, total (the batch's request_counts)
    output_file_id: str | None = None
    error_file_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "input_file_id": self.input_file_id,
            "batch_id": self.batch_id,
            "sent_at": self.sent_at,
            "requests": self.ids,
        }


@dataclass
class _Lines:
    """The run's requests as Batch API lines, by id (in the requests' order)."""

    requests: dict[str, Request] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)

    def file(self, ids: Sequence[str]) -> bytes:
        return "".join(self.text[i] + "\n" for i in ids).encode("utf-8")


class BatchBackend(HostedBackend):
    """A hosted model asked through its provider's Batch API: every request of a `stream` goes in one
    batch (several past `MAX_LINES` or `MAX_BYTES`), polled every `config.batch_poll` seconds."""

    def __init__(self, config: HostedConfig, say: Callable[[str], None] = lambda line: None):
        super().__init__(config)
        if self.endpoint.form == "azure-models":
            raise ConfigError(
                f"{settings.HOSTED_BATCH}: the .../models endpoint form has no Batch API\n"
                "  fix: set AZURE_ENDPOINT to the resource root (https://<resource>.openai.azure.com) with a "
                f"Global-Batch deployment as AZURE_DEPLOYMENT, or drop {settings.HOSTED_BATCH}"
            )
        from openai import AzureOpenAI

        # Azure's api-version routes take the path without its version (Azure's batch guide); OpenAI and
        # the v1 routes take OpenAI's.
        self.url = (
            "/chat/completions" if isinstance(self.endpoint.client, AzureOpenAI) else "/v1/chat/completions"
        )
        self.say = say
        self.poll = config.batch_poll
        self.state: Path | None = None
        self.fresh = False

    def resume_at(self, out: Path, *, fresh: bool = False) -> None:
        self.state = state_path(out)
        self.fresh = fresh

    def describe(self) -> dict[str, object]:
        described = {k: v for k, v in super().describe().items() if k != "concurrency"}
        return {**described, "route": "batch"}

    def estimate(self, examples: Sequence[Example], pricing: Pricing) -> Estimate:
        """As a live run's, at the Batch API's price (half of each price option)."""
        return super().estimate(examples, pricing.batched())

    # --- the route -------------------------------------------------------------------------------------

    def stream(self, requests: Sequence[Request]) -> Iterator[tuple[Request, Completion]]:
        """Sends the requests no recorded batch holds, waits for every batch to finish, and yields each
        request with its completion; the side file goes once all are handed over."""
        if not requests:
            return
        lines = self._lines(requests)
        parts = self._parts(lines)
        for part in parts:
            if part.batch_id is None:
                self._send(part, lines, parts)
        self._wait(parts)
        answers: dict[str, Completion] = {}
        for part in parts:
            answers |= self._answers(part, lines)
        for cid, request in lines.requests.items():
            yield request, answers.get(cid) or _error("no answer: the batch ended without answering it", 0.0)
        if self.state is not None:
            self.state.unlink(missing_ok=True)

    def _lines(self, requests: Sequence[Request]) -> _Lines:
        """Each request's line; its id is its body's digest (the k-th request with the same body: `-k`)."""
        lines = _Lines()
        seen: Counter[str] = Counter()
        for request in requests:
            body = self.body(request)
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
            cid = f"{digest}-{seen[digest]}"
            seen[digest] += 1
            lines.requests[cid] = request
            lines.text[cid] = json.dumps({"custom_id": cid, "method": "POST", "url": self.url, "body": body})
        return lines

    def _parts(self, lines: _Lines) -> list[_Part]:
        """The recorded batches that hold some of these requests, and new parts for the rest."""
        wanted = set(lines.requests)
        parts: list[_Part] = []
        for part in self._load():
            held = wanted.intersection(part.ids)
            if part.batch_id is not None and held:
                self.say(
                    f"batch {part.batch_id}: picked up again ({len(held)} requests; kept in {self.state})"
                )
                parts.append(part)
            elif part.batch_id is None and held == set(part.ids):  # uploaded, never created
                parts.append(part)
            elif part.batch_id is not None:
                self.say(
                    f"batch {part.batch_id} (recorded in {self.state}) holds none of these requests: left"
                )
        covered = {i for part in parts for i in part.ids}
        new: list[str] = []
        size = 0
        for cid in lines.requests:
            if cid in covered:
                continue
            line = len(lines.text[cid].encode("utf-8")) + 1
            if new and (len(new) == MAX_LINES or size + line > MAX_BYTES):
                parts.append(_Part(new))
                new, size = [], 0
            new.append(cid)
            size += line
        if new:
            parts.append(_Part(new))
        self._save(parts)
        return parts

    def _send(self, part: _Part, lines: _Lines, parts: list[_Part]) -> None:
        """Uploads the part's file (unless done before) and creates its batch, recording each step."""
        client = self.endpoint.client
        if part.input_file_id is None:
            data = lines.file(part.ids)
            uploaded = self._call(
                "upload the batch's requests",
                lambda: client.files.create(file=("slm-swap-batch.jsonl", data), purpose="batch"),
                creating=True,
            )
            part.input_file_id = uploaded.id
            self._save(parts)
        input_file_id = part.input_file_id
        batch = self._call(
            "create the batch",
            lambda: client.batches.create(
                input_file_id=input_file_id, endpoint=cast(Any, self.url), completion_window="24h"
            ),
            creating=True,
        )
        part.batch_id, part.sent_at = batch.id, time.time()
        self._save(parts)
        self.say(f"batch {batch.id}: {len(part.ids)} requests sent (its id is kept in {self.state})")

    def _wait(self, parts: list[_Part]) -> None:
        """Polls each unfinished batch until every one has finished, saying each change of its counts."""
        while True:
            for part in parts:
                if part.status in FINISHED:
                    continue
                batch_id = cast(str, part.batch_id)
                batch = self._call(
                    "check the batch", partial(self.endpoint.client.batches.retrieve, batch_id)
                )
                counts = getattr(batch, "request_counts", None)
                seen = (
                    _whole(getattr(counts, "completed", 0)),
                    _whole(getattr(counts, "failed", 0)),
                    _whole(getattr(counts, "total", 0)),
                )
                status = str(getattr(batch, "status", ""))
                if (status, seen) != (part.status, part.counts):
                    done, failed, total = seen
                    self.say(
                        f"batch {batch_id}: {status}, {done + failed} of {total or len(part.ids)} answered"
                        + (f" ({failed} failed)" if failed else "")
                    )
                part.status, part.counts = status, seen
                part.output_file_id = _text_or_none(getattr(batch, "output_file_id", None))
                part.error_file_id = _text_or_none(getattr(batch, "error_file_id", None))
                if status == "failed":
                    self._refused(part, batch, parts)
            if all(part.status in FINISHED for part in parts):
                return
            time.sleep(self.poll)

    def _refused(self, part: _Part, batch: object, parts: list[_Part]) -> None:
        """A batch the provider refused as a whole: forgotten (a rerun sends its requests again), and the
        run stopped with the provider's reasons."""
        self._save([p for p in parts if p is not part])
        errors = getattr(getattr(batch, "errors", None), "data", None) or []
        reasons = "; ".join(
            _Reader().text(f"{getattr(e, 'code', None) or 'error'}: {getattr(e, 'message', '')}", "an error")[
                :300
            ]
            for e in errors[:3]
        )
        raise SlmSwapError(
            f"the Batch API at {self.endpoint.url} refused batch {part.batch_id}: "
            f"{reasons or 'no reason given'}\n  fix: check that {self.model!r} is a model (on Azure, a "
            f"Global-Batch deployment) that takes batches, or drop {settings.HOSTED_BATCH}"
        )

    def _answers(self, part: _Part, lines: _Lines) -> dict[str, Completion]:
        """The part's answers, from its output and error files, for the requests asked now."""
        waited = max(0.0, time.time() - part.sent_at) if part.sent_at is not None else 0.0
        answers: dict[str, Completion] = {}
        asked = set(part.ids).intersection(lines.requests)
        for file_id in (part.output_file_id, part.error_file_id):
            if file_id is None:
                continue
            data = self._call("download the batch's answers", partial(self._download, file_id))
            for raw in data.splitlines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue  # a line that cannot be read: its request is left without an answer
                cid = line.get("custom_id") if isinstance(line, dict) else None
                if isinstance(cid, str) and cid in asked:
                    answers[cid] = self._answer(lines.requests[cid], line, waited)
        if part.status in ("expired", "cancelled"):
            for cid in asked.difference(answers):
                answers[cid] = _error(f"no answer: the batch was {part.status} before answering it", waited)
        return answers

    def _answer(self, request: Request, line: dict[str, Any], waited: float) -> Completion:
        """One line of an output or error file read as the answer to `request`."""
        from openai.types.chat import ChatCompletion

        response = line.get("response")
        if isinstance(response, dict) and response.get("status_code") == 200:
            body = response.get("body")
            try:
                if not isinstance(body, dict):
                    raise _Malformed("the response holds no chat completion")
                try:
                    completion = ChatCompletion.construct(**body)  # as the SDK reads a response
                except (TypeError, ValueError) as e:
                    raise _Malformed("the response is not a chat completion") from e
                return self.completion(request, completion, waited)
            except _Malformed as e:
                return _error(_describe_error(e), waited)
        if isinstance(response, dict):
            body = response.get("body")
            error = body.get("error") if isinstance(body, dict) else None
            status = response.get("status_code")
            label = f"HTTP {status}" if isinstance(status, int) and not isinstance(status, bool) else "HTTP ?"
        else:
            error = line.get("error")
            label = "batch error"
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        label += f" {code}" if isinstance(code, str) and code else ""
        return _error(f"{label}: {str(message or 'no message')[:300]}", waited)

    def _download(self, file_id: str) -> bytes:
        return self.endpoint.client.files.content(file_id).content

    # --- the side file and the API calls ---------------------------------------------------------------

    def _load(self) -> list[_Part]:
        """The recorded batches for this endpoint (none when `fresh`); a side file that cannot be read is
        set aside (`.stale`) and said so."""
        if self.state is None or not self.state.is_file():
            return []
        if self.fresh:
            self.state.unlink()
            return []
        try:
            data = json.loads(self.state.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
                raise ValueError("not a batch side file")
            if data.get("endpoint") != self.endpoint.url:
                self.say(f"{self.state} holds batches made at another endpoint: not picked up here")
                return []
            return [_part_of(entry) for entry in data["batches"]]
        except (OSError, ValueError, KeyError, TypeError):
            stale = self.state.with_name(self.state.name + ".stale")
            self.state.replace(stale)
            self.say(f"{self.state} could not be read; set aside as {stale} (its batches are not picked up)")
            return []

    def _save(self, parts: list[_Part]) -> None:
        if self.state is None:
            return
        data = {
            "format": STATE_FORMAT,
            "endpoint": self.endpoint.url,  # `urls.shown`: never a key or a password
            "model": self.model,
            "batches": [p.to_json() for p in parts],
        }
        with atomic_writer(self.state) as f:
            f.write(json.dumps(data) + "\n")

    def _call(self, what: str, call: Callable[[], T], *, creating: bool = False) -> T:
        """An API call of the route (the SDK retries it); an error every request would meet stops the run
        with what to check, and any other error too, saying that a rerun picks the batches up again."""
        import openai

        try:
            return call()
        except openai.NotFoundError as e:
            if creating:
                raise ConfigError(
                    f"{self.endpoint.url} has no Batch API (HTTP 404 when trying to {what})\n"
                    f"  fix: drop {settings.HOSTED_BATCH} for an endpoint that answers one request at a "
                    "time; on Azure, use an AZURE_API_VERSION with batches (2024-10-21 or later) and a "
                    "Global-Batch deployment"
                ) from e
            raise SlmSwapError(
                f"{self.endpoint.url} does not know a batch recorded in {self.state} (HTTP 404 when "
                f"trying to {what})\n  fix: delete {self.state} (or pass {settings.FORCE}) to send its "
                "requests again"
            ) from e
        except openai.APIError as e:
            fatal = _fatal(e, self.endpoint)
            if fatal is not None:
                raise fatal from e
            raise SlmSwapError(
                f"the Batch API at {self.endpoint.url} failed to {what}: {_describe_error(e)}\n"
                f"  fix: rerun; the batches already sent are picked up again from {self.state}"
            ) from e


def _part_of(entry: Any) -> _Part:
    """A recorded batch, checked (a ValueError or TypeError when it is not one)."""
    ids = entry["requests"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("requests")
    input_file_id, batch_id, sent_at = entry["input_file_id"], entry["batch_id"], entry["sent_at"]
    if not all(v is None or isinstance(v, str) for v in (input_file_id, batch_id)):
        raise ValueError("ids")
    if sent_at is not None and not (isinstance(sent_at, int | float) and math.isfinite(sent_at)):
        raise ValueError("sent_at")
    return _Part(ids, input_file_id, batch_id, None if sent_at is None else float(sent_at))


def _error(reason: str, waited: float) -> Completion:
    read = _Reader()  # an error's text may quote the endpoint's: its surrogates are replaced too
    text = read.text(reason, "the error")
    return Completion(text="", latency_s=waited, error=text, replaced_surrogates=read.replaced_surrogates)


def _whole(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
