"""Read a Sunnybrook cine with its expert contours and write a clinical report.

Usage: python examples/sunnybrook_report.py ../shared/data/sunnybrook SCD0000101 out/
"""

from __future__ import annotations

import sys
from pathlib import Path

from cardiacseg.clinical import compute_cardiac_indices
from cardiacseg.clinical.figures import plot_overlay
from cardiacseg.clinical.report import build_report, format_indices, write_report
from cardiacseg.io import read_sunnybrook_link, read_sunnybrook_study


def main(root: Path, patient: str, out: Path) -> None:
    contour_id = read_sunnybrook_link(root / "link.csv")[patient]
    study = read_sunnybrook_study(root / "dicoms" / patient, root / "contourfiles" / contour_id)
    indices = compute_cardiac_indices(study)
    print(study.summary())
    print(format_indices(indices))
    write_report(out, build_report(study, indices), overwrite=True)
    plot_overlay(study, out / "overlay.png", title=f"{patient} ({contour_id})", overwrite=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
