"""The queue: concurrent requests answered in shared batches by the one generation engine."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from slm_swap.local.constrained import Constraint
from slm_swap.local.engine import Engine
from slm_swap.types import Completion


class Answer(Future[Completion]):
    """A queued prompt's completion. Unlike a plain future, it can be cancelled while it is being
    generated (its client has gone): `cancel()` then stops its row at the next decoding step, and the
    answer resolves to the tokens made by then. Cancelled while still queued, it is never computed."""

    def __init__(self) -> None:
        super().__init__()
        self.abandoned = threading.Event()

    def cancel(self) -> bool:
        self.abandoned.set()
        return super().cancel()


@dataclass
class Job:
    model: str
    text: str
    max_tokens: int
    future: Answer
    constraint: Constraint | None = None  # what the answer must follow
    on_token: Callable[[int], None] | None = None  # streaming: called with each new token id
    special_tokens: bool = False  # the answer keeps its special tokens (a native tool-call format's markers)


class _Streams:
    """A transformers streamer for a batch: hands each row's new tokens to its job's `on_token`, up to
    the job's own limit and its end of sequence."""

    def __init__(self, jobs: Sequence[Job], stop_ids: set[int]):
        self.jobs = jobs
        self.stop_ids = stop_ids
        self.sent = [0] * len(jobs)
        self.ended = [False] * len(jobs)

    def put(self, value: Any) -> None:
        if value.dim() > 1:  # the prompt, sent once before the first step
            return
        for i, token in enumerate(value.tolist()):
            job = self.jobs[i]
            if job.on_token is None or self.ended[i]:
                continue
            if token in self.stop_ids or self.sent[i] >= job.max_tokens:
                self.ended[i] = True
                continue
            self.sent[i] += 1
            job.on_token(token)

    def end(self) -> None:
        pass


class _Abandoned:
    """A transformers stopping criterion over a batch: a row stops once its answer is cancelled, so a
    client that has gone holds no one up (the whole batch ends once all its rows have stopped)."""

    def __init__(self, jobs: Sequence[Job]):
        self.jobs = jobs

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        gone = [job.future.abandoned.is_set() for job in self.jobs]
        return torch.tensor(gone, dtype=torch.bool, device=input_ids.device)


class Batcher:
    """Queues rendered prompts for the one generation engine (`engine.Engine`, the same that `eval`
    answers with); a worker thread answers queued prompts of the same model in one batch."""

    def __init__(self, engine: Engine, *, max_batch: int = 8, max_wait_s: float = 0.05):
        self.engine = engine
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.batches: list[int] = []  # sizes of the batches run, for tests and benchmarks
        self.worker = threading.Thread(target=self._work, name="slm-swap-engine", daemon=True)
        self.worker.start()

    def submit(
        self,
        model: str,
        text: str,
        max_tokens: int,
        *,
        constraint: Constraint | None = None,
        on_token: Callable[[int], None] | None = None,
        special_tokens: bool = False,
    ) -> Answer:
        """Queues a rendered prompt; the answer resolves to its completion, and cancelling it stops its
        generation (`Answer`). `constraint` constrains the answer; `on_token` receives its tokens as
        they are generated (called on the engine's thread); with `special_tokens` the answer keeps its
        special tokens (`Engine.generate`)."""
        future = Answer()
        self.jobs.put(Job(model, text, max_tokens, future, constraint, on_token, special_tokens))
        return future

    def close(self) -> None:
        self.jobs.put(None)
        self.worker.join(timeout=30)

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            batch = [job]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    more = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    self.jobs.put(None)
                    break
                batch.append(more)
            # A request whose client went away while it was queued (its answer cancelled) is not computed.
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
            for key in dict.fromkeys((j.model, j.special_tokens) for j in batch):
                self._run([j for j in batch if (j.model, j.special_tokens) == key])

    def _run(self, jobs: Sequence[Job]) -> None:
        try:
            with self.engine.using(jobs[0].model):
                completions = self._generate(jobs)
            self.batches.append(len(jobs))
            for job, completion in zip(jobs, completions, strict=True):
                job.future.set_result(completion)
        except Exception as e:
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(e)

    def _generate(self, jobs: Sequence[Job]) -> list[Completion]:
        tokenizer = self.engine.tokenizer
        streams = None
        if any(j.on_token for j in jobs):
            streams = _Streams(jobs, {tokenizer.eos_token_id, tokenizer.pad_token_id})
        completions = self.engine.generate(
            [j.text for j in jobs],
            max(j.max_tokens for j in jobs),
            constraints=[j.constraint for j in jobs],
            streamer=streams,
            stopping=[_Abandoned(jobs)],
            special_tokens=jobs[0].special_tokens,
        )
        # Greedy answers share their first k tokens whatever the limit: cut each to its own.
        return [
            c if c.usage.completion_tokens <= j.max_tokens else self._cut(c, j.max_tokens, j.special_tokens)
            for c, j in zip(completions, jobs, strict=True)
        ]

    def _cut(self, completion: Completion, limit: int, special_tokens: bool) -> Completion:
        tokenizer = self.engine.tokenizer
        ids = tokenizer(completion.text, add_special_tokens=False)["input_ids"][:limit]
        text = str(tokenizer.decode(ids, skip_special_tokens=not special_tokens))
        usage = type(completion.usage)(completion.usage.prompt_tokens, len(ids))
        return Completion(text=text, latency_s=completion.latency_s, usage=usage)
