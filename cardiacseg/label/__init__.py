"""MONAI Label integration: the cardiacseg annotation app and its tasks.

``cardiacseg label-app DIR`` writes an app folder (a ``main.py`` naming
:class:`cardiacseg.label.app.CardiacSegApp` and a copy of the segmentation bundle under
``model/cardiac_cine_seg``) that ``monailabel start_server --app DIR --studies DATASTORE`` serves;
``cardiacseg label-datastore`` writes the datastore from DICOM or NIfTI studies
(:mod:`cardiacseg.workflows.label_datastore`). The modules here import MONAI Label, which lives in its own
environment (``make label`` builds ``.venv-label``); nothing else in cardiacseg imports them. See
``docs/monai-label.md``.
"""
