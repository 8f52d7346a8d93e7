"""Benchmark: `prepare` on a generated 60,000-row xLAM file, against a 6,000-row file.

The files repeat the shipped sample's rows with new ids. Each size runs in its own process so that its
peak resident memory is its own; flat memory means the 60k run peaks about where the 6k run does.

    python bench/prepare_60k.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_file(rows: int, path: Path) -> None:
    from slm_swap.data.sources import sample_path

    sample = json.loads(sample_path().read_text(encoding="utf-8"))
    with path.open("w", encoding="utf-8") as f:
        f.write("[\n")
        for i in range(rows):
            row = dict(sample[i % len(sample)])
            row["id"] = i
            f.write(("," if i else "") + json.dumps(row, ensure_ascii=False) + "\n")
        f.write("]\n")


def child(path: str, out_dir: str) -> None:
    from slm_swap.data.prepare import prepare
    from slm_swap.data.sources import xlam_source

    start = time.perf_counter()
    result = prepare(xlam_source(Path(path)), Path(out_dir))
    seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": result.rows_read, "seconds": seconds, "peak_mib": peak_mib}))


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (6_000, 60_000):
            path = Path(tmp) / f"xlam_{rows}.json"
            make_file(rows, path)
            size_mib = path.stat().st_size / 2**20
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(path), os.path.join(tmp, f"out{rows}")],
                capture_output=True,
                text=True,
                check=True,
            )
            results[rows] = json.loads(done.stdout)
            r = results[rows]
            print(
                f"{rows:>6} rows ({size_mib:6.1f} MiB): {r['seconds']:.2f} s, "
                f"{rows / r['seconds']:,.0f} rows/s, peak RSS {r['peak_mib']:.0f} MiB"
            )
    small, large = results[6_000], results[60_000]
    print(
        f"time ratio 60k/6k: {large['seconds'] / small['seconds']:.1f}x for 10x the rows; "
        f"peak memory ratio 60k/6k: {large['peak_mib'] / small['peak_mib']:.2f}x"
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
