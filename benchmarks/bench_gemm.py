"""The GEMM benchmark from a checkout: `python benchmarks/bench_gemm.py [--quick] [--dtype ...] [--out DIR]`.

The code lives in w4a16_rdna3/bench_gemm.py so that `w4a16-rdna3 bench` runs it from an install.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w4a16_rdna3.bench_gemm import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
