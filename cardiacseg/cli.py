"""Command-line interface: a thin argparse layer over pure functions."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence

from cardiacseg import __version__

__all__ = ["build_parser", "main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from cardiacseg.demo import run_demo

    run_demo(args.output, overwrite=args.overwrite)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from cardiacseg.io.readers import read_study

    study = read_study(args.path)
    if args.json:
        print(
            json.dumps(
                {
                    "source": study.source,
                    "shape_TZYX": list(study.image.shape),
                    "spacing_mm_zyx": study.spacing_mm,
                    "phase_times_ms": study.phase_times_ms,
                    "slice_positions_mm": study.slice_positions_mm,
                    "curation": study.curation.to_list(),
                },
                indent=2,
            )
        )
    else:
        print(study.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the ``cardiacseg`` argument parser.

    Returns:
        The parser with its sub-commands.

    Example:
        >>> build_parser().parse_args(["demo", "--output", "out"]).output
        'out'

    """
    parser = argparse.ArgumentParser(
        prog="cardiacseg",
        description="Cardiac cine MRI segmentation and "
        "clinical indices (LV, MYO, RV; EDV, ESV, EF, LV mass).",
    )
    parser.add_argument("--version", action="version", version=f"cardiacseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="report on the packaged Sunnybrook sample study")
    demo.add_argument("--output", "-o", default="demo_output", help="output folder (default: demo_output)")
    demo.add_argument("--overwrite", action="store_true", help="replace files of an earlier run")
    demo.set_defaults(func=_cmd_demo)
    info = sub.add_parser("info", help="read a study (DICOM folder, ACDC folder, NIfTI) and describe it")
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI.

    Args:
        argv: arguments (default: ``sys.argv[1:]``).

    Returns:
        Process exit code: 0 on success, 1 on an input error (printed without a traceback).

    Example:
        >>> main(["--version"])  # doctest: +SKIP

    """
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", message="Invalid value for VR UI")
    try:
        code: int = args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"cardiacseg: error: {exc}", file=sys.stderr)
        return 1
    return code
