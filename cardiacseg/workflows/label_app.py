"""Write the cardiacseg MONAI Label app folder (``cardiacseg label-app DIR``).

The folder holds ``main.py`` (it names :class:`cardiacseg.label.app.CardiacSegApp`, which MONAI Label finds
as the app class), ``model/cardiac_cine_seg`` (a copy of the segmentation bundle: configs, weights,
docs, licence; the train task writes new weights there, never into the installed package) and a
``README.md``. Serve it with ``monailabel start_server --app DIR --studies DATASTORE`` from an environment
with MONAI Label (``make label``; ``docs/monai-label.md``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from cardiacseg.typing import PathLike
from cardiacseg.utils.atomic import atomic_path

__all__ = ["write_label_app"]

_MAIN_PY = '''"""cardiacseg MONAI Label app, written by `cardiacseg label-app` (docs/monai-label.md).

MONAI Label loads the app class from this file: cardiacseg.label.app.CardiacSegApp serves the bundle in
./model/cardiac_cine_seg (inference, staged-transfer training, active learning).
"""

from cardiacseg.label.app import CardiacSegApp

__all__ = ["CardiacSegApp"]
'''

_README = """# cardiacseg MONAI Label app

Written by `cardiacseg label-app` (cardiacseg {version}). Start it with

    monailabel start_server --app {app} --studies DATASTORE

where DATASTORE is a folder of short-axis NIfTI phases (`cardiacseg label-datastore STUDIES DATASTORE`).
`model/cardiac_cine_seg` is this app's own copy of the segmentation bundle: training rounds replace
`models/model.pt` there and keep earlier weights in `models/history/`.
"""

#: What of the bundle the app copies (not run outputs such as eval/, mlruns/, models/train/).
_BUNDLE_PARTS = ("LICENSE", "configs", "docs", "models/model.pt")


def write_label_app(app_dir: PathLike, overwrite: bool = False) -> Path:
    """Write the MONAI Label app folder with a copy of the shipped segmentation bundle.

    Args:
        app_dir: the folder to write (created).
        overwrite: replace ``main.py``, ``README.md`` and the bundle copy of an existing app folder; weights
            trained there are moved to ``models/history/model_<sha256[:12]>.pt`` first, never lost.

    Returns:
        The app folder.

    Raises:
        FileExistsError: the folder exists and is not empty, and ``overwrite`` is False.

    Example:
        >>> app = write_label_app("my_label_app")  # doctest: +SKIP

    """
    from cardiacseg import __version__
    from cardiacseg.demo import shipped_bundle_path
    from cardiacseg.provenance import file_sha256

    app = Path(app_dir)
    if app.exists() and any(app.iterdir()) and not overwrite:
        raise FileExistsError(f"{app} exists and is not empty; pass --overwrite to rewrite the app there")
    bundle = shipped_bundle_path()
    target = app / "model" / "cardiac_cine_seg"
    served = target / "models" / "model.pt"
    if served.exists():
        sha = file_sha256(served)
        if sha != file_sha256(bundle / "models" / "model.pt"):
            kept = target / "models" / "history" / f"model_{sha[:12]}.pt"
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(served, kept)
    for part in _BUNDLE_PARTS:
        src, dst = bundle / part, target / part
        if src.is_dir():
            for f in sorted(p for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                with atomic_path(dst / f.relative_to(src), overwrite=True) as tmp:
                    shutil.copyfile(f, tmp)
        else:
            with atomic_path(dst, overwrite=True) as tmp:
                shutil.copyfile(src, tmp)
    with atomic_path(app / "main.py", overwrite=True) as tmp:
        tmp.write_text(_MAIN_PY)
    with atomic_path(app / "README.md", overwrite=True) as tmp:
        tmp.write_text(_README.format(version=__version__, app=app))
    return app
