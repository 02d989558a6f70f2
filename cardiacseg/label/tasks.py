"""MONAI Label tasks of the cardiacseg app: bundle inference, staged-transfer training, uncertainty.

The tasks are thin: inference is MONAI Label's own :class:`~monailabel.tasks.infer.bundle.BundleInferTask`
on the segmentation bundle (its ``inference.json`` follows MONAI's inference schema, and its ``inferer``,
:class:`~cardiacseg.inferers.cine_inferer.CineSliceInferer`, runs exactly the pipeline of
``cardiacseg segment``: resampling, heart crop, z-score, TTA; ``postprocessing`` holds the same
post-processing steps). Training is MONAI Label's :class:`~monailabel.tasks.train.bundle.BundleTrainTask`
running the bundle's ``train.json`` + ``transfer.json`` (the staged frozen-encoder then unfrozen schedule)
on the datastore's labelled images, split by study, and then publishing the best weights atomically
where the infer task reads them. Importing this module needs MONAI Label (``make label``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.tasks.train.bundle import BundleTrainTask

import cardiacseg
from cardiacseg.clinical.figures import LABEL_COLOURS
from cardiacseg.engines.workflow import training_workflow
from cardiacseg.enums import STRUCTURE_DESCRIPTIONS, STRUCTURES
from cardiacseg.provenance import file_sha256
from cardiacseg.workflows.label_datastore import DATASTORE_MANIFEST, split_by_study, stage_epochs

__all__ = [
    "LABEL_COLORS_RGB",
    "UNCERTAINTY_INFO_KEY",
    "CineSegInferTask",
    "CineTransferTrainTask",
    "CineUncertainty",
    "CineUncertaintyScoring",
    "UncertaintyScorer",
]

logger = logging.getLogger(__name__)

#: Label colours (RGB 0-255) sent to viewers, the colours of cardiacseg's own overlays
#: (:data:`cardiacseg.clinical.figures.LABEL_COLOURS`): LV red, MYO green, RV blue.
LABEL_COLORS_RGB: dict[str, tuple[int, int, int]] = {
    s.key: (int(LABEL_COLOURS[s][1:3], 16), int(LABEL_COLOURS[s][3:5], 16), int(LABEL_COLOURS[s][5:7], 16))
    for s in STRUCTURES
}

#: Key of the uncertainty score in the datastore's image info.
UNCERTAINTY_INFO_KEY = "cardiacseg_uncertainty"


class CineSegInferTask(BundleInferTask):
    """Inference of the cardiac cine segmentation bundle (LV, MYO, RV), with names, colours and identity.

    ``info()`` adds ``label_colors`` (RGB per label), ``label_descriptions`` and the weights' SHA-256;
    every result JSON carries ``cardiacseg_version``, ``bundle_version`` and ``weights_sha256`` of the weights
    that produced it (they change after a train round).

    Args:
        path: the bundle folder (the app's ``model/cardiac_cine_seg``).
        conf: the app's configuration (``--conf`` of ``monailabel start_server``).
        kwargs: passed to :class:`~monailabel.tasks.infer.bundle.BundleInferTask`.

    """

    def __init__(self, path: str, conf: dict[str, str], **kwargs: Any) -> None:
        super().__init__(path, conf, type="segmentation", **kwargs)
        self.dimension = 3  # the network is 2D, but a request segments a whole short-axis stack
        self.description = (
            "cardiacseg short-axis cine segmentation (LV blood pool, myocardium, RV blood pool); "
            "same pre-processing, heart crop, TTA and post-processing as `cardiacseg segment`"
        )

    def weights_path(self) -> str:
        """Return the weights file the task serves (the bundle's ``models/model.pt``)."""
        return str(self.get_path())

    def info(self) -> dict[str, Any]:
        """MONAI Label model info plus label colours, descriptions and the weights checksum."""
        i: dict[str, Any] = super().info()
        i["label_colors"] = {k: list(v) for k, v in LABEL_COLORS_RGB.items()}
        i["label_descriptions"] = {s.key: STRUCTURE_DESCRIPTIONS[s] for s in STRUCTURES}
        i["weights_sha256"] = file_sha256(self.weights_path())
        return i

    def __call__(self, request: dict[str, Any], callbacks: Any = None) -> tuple[Any, dict[str, Any]]:
        """Run inference; the result JSON names the software and the weights used."""
        sha = file_sha256(self.weights_path())
        result_file, result_json = super().__call__(request, callbacks)
        result_json.update(
            cardiacseg_version=cardiacseg.__version__, bundle_version=self.version, weights_sha256=sha
        )
        return result_file, result_json


class CineTransferTrainTask(BundleTrainTask):
    """Fine-tune the served model on the datastore's labelled images with the staged transfer schedule.

    Runs the bundle's ``train.json`` overlaid with ``transfer.json`` (encoder frozen for the first stage,
    then everything at a tenth of the learning rate; starting from the weights being served), on a
    datalist written from the datastore (labels in cardiacseg's values 1 LV, 2 MYO, 3 RV), validated on
    whole held-out studies (:func:`split_by_study`). The best checkpoint (validation mean Dice) then
    replaces ``models/model.pt`` atomically; the previous weights are kept under ``models/history/``. The
    infer task reloads weights when the file changes, so the next inference uses them.

    Request options (MONAI Label train request): ``max_epochs`` (default 30), ``stage1_epochs`` (frozen
    epochs, default a third), ``val_split`` (fraction of studies, default 0.2), ``device``.

    Args:
        path: the bundle folder.
        conf: the app configuration.

    """

    def __init__(self, path: str, conf: dict[str, str]) -> None:
        super().__init__(path, conf, enable_tracking=False)
        self.description = (
            "staged transfer (encoder frozen, then fine-tuned) of the served model on the labelled images, "
            "validated on held-out studies; the best weights are then served"
        )

    def stats(self) -> dict[str, Any]:
        """Return the last train round's result (``GET /info/`` → ``train_stats``); empty before the first."""
        runs = sorted((Path(self.bundle_path) / "models" / "transfer").glob("*/result.json"))
        if not runs:
            return {}
        result: dict[str, Any] = json.loads(runs[-1].read_text())
        return result

    def config(self) -> dict[str, Any]:
        """Options shown in the MONAI Label client's train panel."""
        return {"max_epochs": 30, "stage1_epochs": 10, "val_split": 0.2, "device": ["cpu", "cuda"]}

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        """Train, validate, and publish the best weights; returns what was done."""
        # LocalDatastore keeps its folder in a private attribute; other datastores have no manifest
        folder = getattr(datastore, "_datastore_path", None)
        manifest = _read_manifest(Path(folder) / DATASTORE_MANIFEST) if folder else {}
        datalist = [{"image": d["image"], "label": d["label"]} for d in datastore.datalist()]
        if not datalist:
            raise ValueError("no labelled images in the datastore (labels/final is empty): label some first")
        train, val = split_by_study(datalist, float(request.get("val_split", 0.2)), manifest)
        if not val:
            logger.warning("one labelled study only: validating on the training images (no held-out study)")
            val = train
        max_epochs = int(request.get("max_epochs", 30))
        s1_req = request.get("stage1_epochs")
        s1, s2 = stage_epochs(max_epochs, None if s1_req in (None, "") else int(s1_req))
        bundle = Path(self.bundle_path)
        run_dir = bundle / "models" / "transfer" / time.strftime("%Y%m%d-%H%M%S")
        run_dir.mkdir(parents=True, exist_ok=True)
        datalist_file = run_dir / "datalist.json"
        datalist_file.write_text(json.dumps({"training": train, "validation": val}, indent=1))
        served = bundle / "models" / "model.pt"
        before = file_sha256(served)
        device = str(request.get("device", "cpu"))
        if device.startswith("cuda"):
            import torch

            device = device if torch.cuda.is_available() else "cpu"
        overrides: dict[str, Any] = {
            "datalist": str(datalist_file),
            "label_convention": "internal",
            "pretrained": str(served),
            "ckpt_dir": str(run_dir),
            "stage1_epochs": s1,
            "stage2_epochs": s2,
            "device": f"$torch.device('{device}')",
            "mlflow_tracking": False,
            "resume": False,
            "num_workers": 0,
        }
        logger.info(
            f"cardiacseg train: {len(train)} training / {len(val)} validation images "
            f"({len({i['patient'] for i in train})} / {len({i['patient'] for i in val})} studies), "
            f"{s1} frozen + {s2} fine-tuning epochs, from weights {before[:12]}"
        )
        t0 = time.time()
        workflow = training_workflow(bundle, ("train.json", "transfer.json"), **overrides)  # initialised
        try:
            workflow.run()
        finally:
            workflow.finalize()
        best = run_dir / "model.pt"
        if not best.exists():
            raise RuntimeError(f"training finished but wrote no checkpoint {best}")
        history = bundle / "models" / "history"
        history.mkdir(exist_ok=True)
        shutil.copy2(served, history / f"model_{before[:12]}.pt")
        tmp = served.with_name(f".{served.name}.{os.getpid()}.tmp")
        shutil.copyfile(best, tmp)
        os.replace(tmp, served)
        after = file_sha256(served)
        result = {
            "train_images": len(train),
            "validation_images": len(val),
            "stage1_epochs": s1,
            "stage2_epochs": s2,
            "seconds": round(time.time() - t0, 1),
            "weights_sha256_before": before,
            "weights_sha256": after,
            "run_dir": str(run_dir),
        }
        (run_dir / "result.json").write_text(json.dumps(result, indent=1))
        logger.info(f"cardiacseg train: done, serving weights {after[:12]} ({result['seconds']} s)")
        return result


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    try:
        images = json.loads(path.read_text()).get("images", {})
    except (OSError, ValueError):
        logger.warning(f"{path}: unreadable datastore manifest; grouping images by name")
        return {}
    return images if isinstance(images, dict) else {}


class UncertaintyScorer:
    """Mean predictive entropy of the served model's TTA-averaged prediction in the heart region.

    The predictor is the bundle's own (:meth:`~cardiacseg.inferers.SlicePredictor.from_bundle`, the
    pipeline of ``cardiacseg segment``), rebuilt when the weights file changes; the score is
    :func:`~cardiacseg.metrics.uncertainty.heart_region_entropy`. Scores are cached in the datastore's image
    info with the weights' SHA-256, so each image is scored once per model.

    Args:
        bundle_dir: the bundle folder.

    """

    def __init__(self, bundle_dir: str) -> None:
        self.bundle_dir = bundle_dir
        self._lock = threading.Lock()
        self._predictor: Any = None
        self._sha = ""

    def _current(self) -> tuple[Any, str]:
        from cardiacseg.inferers import SlicePredictor

        sha = file_sha256(Path(self.bundle_dir) / "models" / "model.pt")
        if self._predictor is None or sha != self._sha:
            self._predictor, self._sha = SlicePredictor.from_bundle(self.bundle_dir), sha
        return self._predictor, sha

    def try_score(self, image_id: str, datastore: Datastore) -> float | None:
        """Like :meth:`score`, but ``None`` (logged) for an image that cannot be read or no longer exists."""
        try:
            return self.score(image_id, datastore)
        except (ValueError, OSError) as exc:
            logger.warning(f"uncertainty: {image_id} skipped: {exc}")
            return None

    def score(self, image_id: str, datastore: Datastore) -> float:
        """Return the image's score (cached in the datastore per weights checksum)."""
        from cardiacseg.io.discover import read_study
        from cardiacseg.metrics.uncertainty import heart_region_entropy

        with self._lock:
            predictor, sha = self._current()
            cached = datastore.get_image_info(image_id).get(UNCERTAINTY_INFO_KEY)
            if isinstance(cached, dict) and cached.get("weights_sha256") == sha:
                return float(cached["score"])
            study = read_study(datastore.get_image_uri(image_id))
            probs = predictor.predict_probabilities(study, phases=[0])[0]
            value = heart_region_entropy(probs)
            datastore.update_image_info(
                image_id, {UNCERTAINTY_INFO_KEY: {"score": value, "weights_sha256": sha, "time": time.time()}}
            )
            return value


class CineUncertaintyScoring(ScoringMethod):
    """``POST /scoring/uncertainty``: score every unlabelled image (see :class:`UncertaintyScorer`)."""

    def __init__(self, scorer: UncertaintyScorer) -> None:
        super().__init__("Mean predictive entropy (TTA) of the served model in the heart region")
        self.scorer = scorer

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        """Score the unlabelled images; returns ``{"scores": {image id: entropy}}``."""
        ids = datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels"))
        scores = {i: self.scorer.try_score(i, datastore) for i in ids}
        return {"scores": {i: v for i, v in scores.items() if v is not None}}


class CineUncertainty(Strategy):
    """Active learning: the unlabelled image the served model is least sure of (highest entropy).

    Images not yet scored for the served weights are scored first (about a second per image on 2 CPU
    cores); ``POST /scoring/uncertainty`` scores them all ahead of time.
    """

    def __init__(self, scorer: UncertaintyScorer) -> None:
        super().__init__("Most uncertain unlabelled image (mean TTA predictive entropy in the heart)")
        self.scorer = scorer

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any] | None:
        """Pick the image; ``None`` when every image is labelled."""
        ids = sorted(datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels")))
        if not ids:
            return None
        scores = {i: v for i in ids if (v := self.scorer.try_score(i, datastore)) is not None}
        if not scores:
            return None
        best = max(scores, key=lambda i: (scores[i] if math.isfinite(scores[i]) else -1.0, i))
        logger.info(f"uncertainty strategy: {best} (entropy {scores[best]:.4f} of {len(ids)} unlabelled)")
        return {"id": best, "uncertainty": scores[best]}
