"""The command line: `w4a16-rdna3 [info|check|bench|isa]` (bare = info, then check)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from w4a16_rdna3 import cli_check, cli_info


def _bench(argv: Sequence[str]) -> int:
    from w4a16_rdna3 import bench_gemm

    return bench_gemm.main(list(argv))


def _isa(argv: Sequence[str]) -> int:
    from w4a16_rdna3 import isa

    return isa.isa_main(list(argv))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="w4a16-rdna3",
        description="W4A16 GPTQ linear kernels for AMD RDNA3 (gfx1100). "
        "With no command: `info`, then `check`.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.add_parser("info", help="platform, build and kernel selection, with the reason for every refusal")
    check = commands.add_parser("check", help="run every available path against the fp32 reference")
    check.add_argument("--quick", action="store_true", help="fewer, smaller layers")
    commands.add_parser("bench", help="time the kernels (options: w4a16-rdna3 bench --help)", add_help=False)
    commands.add_parser("isa", help="compile the kernels for gfx11 and check their ISA (options: isa --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in and args_in[0] == "bench":
        return _bench(args_in[1:])
    if args_in and args_in[0] == "isa":
        return _isa(args_in[1:])
    args = _parser().parse_args(args_in)
    if args.command == "info":
        return cli_info.print_info()
    if args.command == "check":
        return cli_check.run_check(quick=args.quick)
    status = cli_info.print_info()
    print()
    return max(status, cli_check.run_check(quick=False))


if __name__ == "__main__":
    sys.exit(main())
