"""Import MONAI without the optional packages the inference path never needs (issue 15: start-up time).

``import monai`` runs MONAI's ``__init__``, which imports every MONAI sub-package; their module-level
``optional_import(...)`` calls import every optional third-party package that happens to be installed:
PyTorch-Ignite (and through it ``torch.distributed`` and SymPy), MLflow (and FastAPI, pydantic,
OpenTelemetry...), pandas and pyarrow, matplotlib, scikit-learn, ITK. In a full development environment
that is about 4 s of a ``cardiacseg segment`` run that uses none of them through MONAI.
:func:`import_monai_lean` imports ``monai`` and ``monai.bundle`` while a :data:`sys.meta_path` finder makes
those packages look not installed, then removes the finder. MONAI's ``optional_import`` catches the
``ImportError`` and binds a stub that raises :class:`monai.utils.OptionalImportError` only when used, so
MONAI works for everything that does not need them. Afterwards every package imports normally: only the
names MONAI bound at import time stay stubs.

What becomes unavailable *through MONAI* in a process that used the lean import (the packages themselves
import and work normally afterwards, e.g. cardiacseg's own matplotlib figures):

- ``ignite``: MONAI's engines and handlers (``monai.engines.SupervisedTrainer``/``SupervisedEvaluator``,
  ``monai.handlers.*``: ``CheckpointLoader``, ``StatsHandler``, metric handlers) are defined on stub base
  classes and raise when constructed, and MONAI's Ignite event enums are stubs. Hence cardiacseg's
  training and evaluation engines (``cardiacseg.engines``, ``cardiacseg.handlers``) and a bundle workflow
  built on ``SupervisedEvaluator`` (``python -m monai.bundle run`` with the bundle's configs, which runs
  in a process of its own) must not run after the lean import. ``cardiacseg segment`` / ``evaluate`` /
  ``info`` / ``demo`` use none of them: prediction is plain torch (``SlicePredictor``), metrics are
  cardiacseg's pure-torch ones.
- ``mlflow`` (and ``fastapi``, ``pydantic``...): ``monai.handlers.MLFlowHandler`` and MONAI's
  bundle-workflow MLflow tracking settings. Only training logs to MLflow.
- ``matplotlib``: ``monai.visualize`` plotting (``matshow3d``, ``blend_images``' colour maps),
  ``monai.utils.jupyter_utils`` and the ``LearningRateFinder`` plot. cardiacseg draws its montage,
  volume-curve and Bland-Altman figures with matplotlib directly (``cardiacseg.clinical.figures``),
  which imports it itself when it draws (tested: a PNG is written after the lean import, and
  ``cardiacseg segment`` writes byte-identical PNGs either way).
- ``pandas``, ``pyarrow``: MONAI's ``CSVDataset``/``CSVIterableDataset``, the data-frame helpers of
  ``monai.data.utils`` and ``monai.utils.profiling``, ``monai.apps.tcia``. cardiacseg writes its tables
  with ``csv``.
- ``sklearn``: ``monai.metrics.embedding_collapse``.
- ``sympy``: nothing of MONAI's; it was only pulled in through ignite → ``torch.distributed`` →
  ``torch.fx.experimental.symbolic_shapes``. Hidden so that no MONAI import pulls it in another way; torch
  imports it normally later (``torch.compile``) because the finder is gone by then.
- ``itk``: MONAI's ``ITKReader``/``ITKWriter``, ``monai.data.itk_torch_bridge``; ``LoadImage`` without a
  reader falls back to nibabel (NIfTI) instead of ITK. cardiacseg reads DICOM
  with pydicom and NIfTI with nibabel; ``cardiacseg.transforms`` N4 bias correction imports ``itk``
  itself, when called.
- ``tensorboard``, ``transformers``, ``huggingface_hub``, ``onnx``, ``onnxruntime``, ``openvino``:
  MONAI's TensorBoard handlers and ``torch.utils.tensorboard`` (imported by MONAI only for them), the
  Hugging Face bundle download, ONNX/OpenVINO export and runtime. None is installed by cardiacseg; they
  are hidden when present because MONAI would import them.

- ``scipy.signal``, ``scipy.sparse.linalg`` (about 1 s of SciPy's 1.6 s): MONAI's ultrasound confidence map
  and its signal transforms (``monai.transforms.signal``: notch filter). The rest of SciPy imports normally
  (``scipy.ndimage``, used by cardiacseg's post-processing, is preloaded).

Never hidden, because the inference path needs them or a non-MONAI library caches a probe of them:
NumPy, torch, SciPy, nibabel (imports SciPy, probes optional packages), pydicom (its pixel-data
decoders probe GDCM, pylibjpeg, Pillow and NumPy once, when ``pydicom.pixels`` is imported), Pillow, h5py,
scikit-image (MONAI's ``KeepLargestConnectedComponent`` labels with ``skimage.measure``), einops (MONAI's
Swin transformer blocks, used by cardiacseg's Swin-UNet, call ``einops.rearrange``), PyYAML (bundle
configs), tqdm. These are imported *before* the finder is installed (:data:`PRELOAD_MODULES`), so whatever
they probe at import time is probed in the full environment.

Safety checks done on every call and reported in :class:`LeanImportReport`: every blocked import attempt
is recorded with the module that attempted it (``blocked``); a module other than MONAI's that attempted
a hidden import and was left in :data:`sys.modules` may have cached "not installed" (``cached_by``;
empty with the packages of this environment, asserted by tests/test_lean_import.py); modules imported
during the window whose parent package failed to import (half-imported leftovers) are removed from
:data:`sys.modules` (``purged``) so a later import starts clean.

Only the standard library is imported at module level.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType, ModuleType

#: Environment variable that disables :func:`import_monai_lean` (``1``, ``true``, ``yes``, ``on``).
FULL_IMPORTS_ENV = "CARDIACSEG_FULL_IMPORTS"

#: Packages (and two SciPy modules) hidden from MONAI while it is imported (module docstring: each one).
HIDDEN_PACKAGES: frozenset[str] = frozenset(
    {
        "ignite",
        "mlflow",
        "fastapi",
        "matplotlib",
        "pandas",
        "pyarrow",
        "sklearn",
        "sympy",
        "itk",
        "tensorboard",
        "transformers",
        "huggingface_hub",
        "onnx",
        "onnxruntime",
        "openvino",
        "scipy.signal",
        "scipy.sparse.linalg",
    }
)

#: Modules imported before anything is hidden: the non-MONAI libraries of the inference path, so that
#: their import-time probes of optional packages see the full environment. Missing ones are skipped.
PRELOAD_MODULES: tuple[str, ...] = (
    "numpy",
    "torch",
    "scipy.ndimage",
    "nibabel",
    "pydicom",
    "pydicom.pixels",
    "PIL.Image",
    "h5py",
    "skimage",
    "yaml",
    "tqdm",
)

_FINDER_MODULE = __name__


@dataclass
class LeanImportReport:
    """What :func:`import_monai_lean` did.

    Attributes:
        lean: whether MONAI was imported with packages hidden (False: no-op or disabled).
        reason: why not, when ``lean`` is False (``"monai already imported"``, ``"disabled by ..."``).
        hidden: the packages that were hidden (``HIDDEN_PACKAGES`` minus those already imported).
        blocked: ``(module, importer)`` for each import attempt the finder refused, in order.
        cached_by: importers outside MONAI that attempted a hidden import and stayed imported: they may
            have cached the package as not installed. Empty is the safe state.
        purged: half-imported leftovers removed from ``sys.modules`` after the import.
        seconds: wall time of the call.

    """

    lean: bool
    reason: str = ""
    hidden: tuple[str, ...] = ()
    blocked: list[tuple[str, str]] = field(default_factory=list)
    cached_by: tuple[str, ...] = ()
    purged: tuple[str, ...] = ()
    seconds: float = 0.0


class _HidingFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that makes the packages in ``hidden`` (and their sub-modules) not importable."""

    def __init__(self, hidden: frozenset[str]) -> None:
        self.hidden = hidden
        self.blocked: list[tuple[str, str]] = []
        self.purged: list[str] = []

    def hides(self, name: str) -> bool:
        """Whether ``name`` is a hidden package or module, or inside one."""
        return any(name == h or name.startswith(h + ".") for h in self.hidden)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not self.hides(fullname):
            return None  # the normal finders decide
        self.blocked.append((fullname, _importer()))
        raise ModuleNotFoundError(
            f"No module named {fullname!r} (hidden by cardiacseg's lean MONAI import; set "
            f"{FULL_IMPORTS_ENV}=1 for the full one)",
            name=fullname,
        )


def _importer() -> str:
    """Name of the module whose code is importing (the first frame outside importlib and this module)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        name = str(frame.f_globals.get("__name__", "?"))
        if not (name.startswith("importlib") or name == _FINDER_MODULE):
            return name
        frame = frame.f_back
    return "?"


def full_imports_requested() -> bool:
    """Whether ``CARDIACSEG_FULL_IMPORTS`` asks for the normal (full) MONAI import.

    Returns:
        True when the variable is ``1``, ``true``, ``yes`` or ``on`` (any case).

    """
    return os.environ.get(FULL_IMPORTS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def hidden_packages(packages: frozenset[str]) -> Iterator[_HidingFinder]:
    """Make ``packages`` not importable inside the ``with`` block, then importable again.

    Packages already in :data:`sys.modules` cannot be hidden (an ``import`` of them never reaches a
    finder) and are left out. On exit the finder is removed and modules imported inside the block whose
    parent package is not in :data:`sys.modules` (left over from a package whose ``__init__`` failed on a
    hidden import) are removed, so that a later import of that package starts clean.

    Args:
        packages: top-level package names, or dotted module names (``"scipy.signal"``: hidden with its
            submodules while the rest of ``scipy`` imports normally).

    Yields:
        The finder: ``finder.hidden`` is what is hidden, ``finder.blocked`` lists ``(module, importer)``,
        ``finder.purged`` (filled on exit) the leftovers removed from :data:`sys.modules`.

    Example:
        >>> with hidden_packages(frozenset({"not_a_real_package"})) as finder:
        ...     pass
        >>> finder.blocked
        []

    """
    top_level = {name.partition(".")[0] for name in sys.modules}
    finder = _HidingFinder(
        frozenset(p for p in packages if p not in (sys.modules if "." in p else top_level))
    )
    before = set(sys.modules)
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        sys.meta_path.remove(finder)
        for name in sorted(n for n in sys.modules if n not in before):  # parents before children
            parent = name.rpartition(".")[0]
            if finder.hides(name) or (parent and parent not in sys.modules):
                del sys.modules[name]
                finder.purged.append(name)


def import_monai_lean(hidden: frozenset[str] = HIDDEN_PACKAGES) -> LeanImportReport:
    """Import ``monai`` and ``monai.bundle`` with ``hidden`` made not importable meanwhile.

    A no-op when ``monai`` is already imported, and when ``CARDIACSEG_FULL_IMPORTS=1`` (then nothing is
    imported: MONAI is imported normally where it is first used). Call it first thing in a command that
    only predicts, evaluates or reads (not one that trains with MONAI/Ignite engines, see the module
    docstring for what becomes unavailable through MONAI).

    Args:
        hidden: packages or modules to hide (default :data:`HIDDEN_PACKAGES`).

    Returns:
        What was done, with the blocked import attempts and the safety findings.

    Example:
        >>> report = import_monai_lean()  # doctest: +SKIP
        >>> report.lean, report.cached_by  # doctest: +SKIP
        (True, ())

    """
    t0 = time.perf_counter()
    if "monai" in sys.modules:
        return LeanImportReport(lean=False, reason="monai already imported")
    if full_imports_requested():
        return LeanImportReport(lean=False, reason=f"disabled by {FULL_IMPORTS_ENV}")
    for module in PRELOAD_MODULES:  # __import__, not import_module: -X importtime shows these imports
        try:
            __import__(module)
        except ImportError:
            pass  # not installed: nothing of it to probe
    before = set(sys.modules)
    try:
        with hidden_packages(hidden) as finder:
            __import__("monai.bundle")  # imports monai first
    except ImportError as exc:  # a MONAI that imports a hidden package unconditionally: import it fully
        for name in [n for n in sys.modules if n not in before]:
            del sys.modules[name]
        __import__("monai.bundle")
        return LeanImportReport(
            lean=False, reason=f"lean import failed ({exc}); imported fully", seconds=time.perf_counter() - t0
        )
    cached_by = sorted(
        {
            importer
            for _, importer in finder.blocked
            if importer in sys.modules and importer.partition(".")[0] != "monai"
        }
    )
    return LeanImportReport(
        lean=True,
        hidden=tuple(sorted(finder.hidden)),
        blocked=list(finder.blocked),
        cached_by=tuple(cached_by),
        purged=tuple(finder.purged),
        seconds=time.perf_counter() - t0,
    )
