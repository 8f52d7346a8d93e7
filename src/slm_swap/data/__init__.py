"""Data: sources (xLAM, BFCL, OpenAI-format logs, Langfuse datasets; `sources.py`) → validated rows
(`scan.py`, `rows.py`) → rendered examples in split files (`splits.py`, `nocall.py`), by `prepare.py`."""
