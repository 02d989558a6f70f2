"""The cardiacseg MONAI Label app: pre-segment cine short-axis phases, learn from corrections, pick the next.

Served by ``monailabel start_server --app DIR --studies DATASTORE`` where ``DIR`` was written by
``cardiacseg label-app DIR`` (see ``docs/monai-label.md``):

* model / infer task ``cardiac_cine_seg``: the shipped segmentation bundle (LV, MYO, RV);
* train task ``cardiac_cine_seg``: staged transfer on the labelled images, then served;
* active-learning strategies ``random``, ``first`` (MONAI Label's) and ``uncertainty`` (highest mean
  TTA predictive entropy in the heart), and the scoring method ``uncertainty`` that scores them ahead.

App configuration (``--conf KEY VALUE``): ``preload`` (``true`` loads the model at start),
``skip_trainers`` (``true`` serves inference only).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import HTTPException
from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

import cardiacseg
from cardiacseg.enums import STRUCTURES
from cardiacseg.label.tasks import (
    CineSegInferTask,
    CineTransferTrainTask,
    CineUncertainty,
    CineUncertaintyScoring,
    UncertaintyScorer,
)

__all__ = ["BUNDLE_NAME", "CardiacSegApp", "CineDatastore"]

logger = logging.getLogger(__name__)

#: The model name in the app (the bundle folder under ``model/``).
BUNDLE_NAME = "cardiac_cine_seg"


class CineDatastore(LocalDatastore):
    """MONAI Label's local datastore that refuses labels which do not fit their image.

    ``PUT /datastore/label`` with an unreadable file, another shape than the image or values outside
    0-3 answers HTTP 422 naming the problem, and nothing is saved
    (:func:`~cardiacseg.workflows.label_datastore.check_datastore_label`); MONAI Label alone would store
    it and mark the image labelled.
    """

    def save_label(
        self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]
    ) -> str:
        """Check the label against its image, then save it (LocalDatastore.save_label)."""
        from cardiacseg.workflows.label_datastore import check_datastore_label

        if image_id not in self.list_images():
            raise HTTPException(status_code=404, detail=f"image {image_id!r} is not in the datastore")
        try:
            check_datastore_label(label_filename, self.get_image_uri(image_id))
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=f"label for {image_id!r} refused: {exc}") from exc
        saved: str = super().save_label(image_id, label_filename, label_tag, label_info)
        return saved

    def add_image(self, image_id: str, image_filename: str, image_info: dict[str, Any]) -> str:
        """Check the upload is one short-axis phase (readable 3D NIfTI), then add it; else HTTP 422."""
        from cardiacseg.workflows.label_datastore import check_datastore_image

        try:
            check_datastore_image(image_filename)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=f"image {image_id!r} refused: {exc}") from exc
        added: str = super().add_image(image_id, image_filename, image_info)
        return added


class CardiacSegApp(MONAILabelApp):
    """MONAI Label app serving the cardiacseg segmentation bundle found in ``app_dir/model/cardiac_cine_seg``.

    Args:
        app_dir: the app folder (``cardiacseg label-app`` writes it).
        studies: the datastore folder (``cardiacseg label-datastore`` writes it).
        conf: ``--conf`` key/value pairs.

    Raises:
        FileNotFoundError: the app folder has no bundle.

    """

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.bundle_dir = Path(app_dir) / "model" / BUNDLE_NAME
        if not (self.bundle_dir / "configs" / "inference.json").is_file():
            raise FileNotFoundError(
                f"{self.bundle_dir}: no segmentation bundle; write the app with "
                f"`cardiacseg label-app {app_dir}`"
            )
        self.scorer = UncertaintyScorer(str(self.bundle_dir))
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="cardiacseg: cardiac cine MRI (LV, MYO, RV)",
            description="Short-axis cine segmentation with the cardiacseg model in the loop",
            version=cardiacseg.__version__,
            labels={s.key: int(s) for s in STRUCTURES},
        )

    def init_datastore(self) -> Any:
        """Serve a local folder with :class:`CineDatastore` (remote datastores as MONAI Label does)."""
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        return CineDatastore(
            self.studies,
            extensions=settings.MONAI_LABEL_DATASTORE_FILE_EXT,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def infer(self, request: dict[str, Any], datastore: Any = None) -> dict[str, Any]:
        """Run inference; an unknown image id is HTTP 404 and an unreadable image HTTP 422, both named."""
        from cardiacseg.workflows.label_datastore import check_datastore_image

        model = request.get("model")
        if model not in self._infers:
            raise HTTPException(
                status_code=404, detail=f"no model {model!r} in this app (models: {sorted(self._infers)})"
            )
        image = request.get("image")
        if not image:
            raise HTTPException(status_code=422, detail="no image: give ?image=<id> or upload a file")
        if isinstance(image, str):
            ds = datastore if datastore else self.datastore()
            if Path(image).exists():
                path = image
            elif image in ds.list_images():
                path = ds.get_image_uri(image)
            else:
                raise HTTPException(
                    status_code=404,
                    detail=f"image {image!r} is not in the datastore ({len(ds.list_images())} images; "
                    "GET /datastore/?output=all lists them)",
                )
            try:
                check_datastore_image(path)
            except ValueError as exc:
                shown = image if image in ds.list_images() else "the uploaded file"
                raise HTTPException(status_code=422, detail=f"cannot segment {shown}: {exc}") from exc
        result: dict[str, Any] = super().infer(request, datastore)
        return result

    def next_sample(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run an active-learning strategy; an unknown strategy is HTTP 404."""
        strategy = request.get("strategy") or "random"
        if strategy not in self._strategies:
            raise HTTPException(
                status_code=404,
                detail=f"no strategy {strategy!r} in this app (strategies: {sorted(self._strategies)})",
            )
        result: dict[str, Any] = super().next_sample(request)
        return result

    def init_infers(self) -> dict[str, Any]:
        """Serve the segmentation model."""
        return {BUNDLE_NAME: CineSegInferTask(str(self.bundle_dir), self.conf)}

    def init_trainers(self) -> dict[str, Any]:
        """Offer the staged-transfer train task (none with ``--conf skip_trainers true``)."""
        if str(self.conf.get("skip_trainers", "false")).lower() == "true":
            return {}
        return {BUNDLE_NAME: CineTransferTrainTask(str(self.bundle_dir), self.conf)}

    def init_strategies(self) -> dict[str, Any]:
        """Offer random, first-unlabelled and most-uncertain."""
        return {"random": Random(), "first": First(), "uncertainty": CineUncertainty(self.scorer)}

    def init_scoring_methods(self) -> dict[str, Any]:
        """Offer scoring of every unlabelled image for the ``uncertainty`` strategy."""
        return {"uncertainty": CineUncertaintyScoring(self.scorer)}
