"""Translate a copy of csrc/ for the ROCm build, the way torch.utils.cpp_extension does it.

ROCm builds of torch ship hipified headers (ATen/hip/..., c10/hip/...); sources written against the
CUDA names of torch's and the runtime's API are translated by torch's hipify into the same directory:
gemm_dot2.cu -> gemm_dot2.hip, ops.cpp -> ops_hip.cpp, headers -> *_hip.cuh / *_hip.h, includes
rewritten. CMakeLists.txt runs this file as a script at configure time (it imports torch and the
standard library only, not this package); w4a16_rdna3/hip_host.py imports it.

    python3 w4a16_rdna3/hipify_csrc.py DIR   # writes DIR/sources.txt: what to compile, one per line
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path


def hipify_csrc(directory: Path) -> list[Path]:
    """Hipify every source under `directory` in place; return its top-level .cu and .cpp files as
    the build compiles them: each one's translation, or the file itself where nothing changed."""
    from torch.utils.hipify.hipify_python import hipify

    directory = directory.resolve()
    sources = sorted([*directory.glob("*.cu"), *directory.glob("*.cpp")])
    with contextlib.redirect_stdout(io.StringIO()):
        result = hipify(project_directory=str(directory), output_directory=str(directory),
                        includes=[str(directory / "*")], show_detailed=False, show_progress=False,
                        is_pytorch_extension=True)
    translated = []
    for source in sources:
        entry = result.get(str(source))
        translated.append(Path(entry.hipified_path) if entry and entry.hipified_path else source)
    return translated


if __name__ == "__main__":
    # Run as a script, this file's directory comes first on sys.path, and the package's platform.py
    # would shadow the standard library's module, which torch imports.
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    target = Path(sys.argv[1])
    (target / "sources.txt").write_text("".join(f"{path}\n" for path in hipify_csrc(target)))
