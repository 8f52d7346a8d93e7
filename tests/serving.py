"""`slm-swap serve`'s app on a real uvicorn server in a thread, on a free port of 127.0.0.1."""

from __future__ import annotations

import threading
import time
from typing import Any

from slm_swap.serve import Batcher, create_app


class Running:
    def __init__(
        self,
        batcher: Batcher,
        api_key: str | None,
        constrained: bool = False,
        tracer: Any = None,
        family: str | None = None,
    ):
        import uvicorn

        self.batcher = batcher
        app = create_app(batcher, api_key=api_key, constrained=constrained, tracer=tracer, family=family)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.batcher.close()
