"""Readers, writers and curation: DICOM cine, NIfTI, ACDC, SSL4MIS HDF5, Sunnybrook contours, Kaggle DSB."""

from __future__ import annotations

from cardiacseg.io.acdc import (
    AcdcFormatError,
    AcdcInfo,
    read_acdc_info,
    read_acdc_patient,
    write_acdc_patient,
)
from cardiacseg.io.dicom import DicomReadError, DicomSeriesInfo, list_dicom_series, read_dicom_cine
from cardiacseg.io.discover import StudyInput, discover_studies, read_study
from cardiacseg.io.kaggle import (
    DsbDimensions,
    DsbFormatError,
    DsbVolumes,
    read_dsb_dimensions,
    read_dsb_volumes,
)
from cardiacseg.io.labels import acdc_to_internal, internal_to_acdc
from cardiacseg.io.limits import InputTooLargeError
from cardiacseg.io.nifti import NiftiReadError, read_nifti_array, read_nifti_study, write_nifti
from cardiacseg.io.ssl4mis import (
    Ssl4misFormatError,
    list_ssl4mis_patients,
    read_ssl4mis_frame,
    read_ssl4mis_study,
)
from cardiacseg.io.study import AXES, CineStudy, CurationIssue, CurationReport, PatientInfo
from cardiacseg.io.sunnybrook import (
    ContourFormatError,
    read_contour_file,
    read_sunnybrook_contours,
    read_sunnybrook_link,
    read_sunnybrook_study,
)
from cardiacseg.utils.atomic import atomic_path, atomic_write, atomic_write_text

__all__ = [
    "AXES",
    "AcdcFormatError",
    "AcdcInfo",
    "CineStudy",
    "ContourFormatError",
    "CurationIssue",
    "CurationReport",
    "DicomReadError",
    "DicomSeriesInfo",
    "DsbDimensions",
    "DsbFormatError",
    "DsbVolumes",
    "InputTooLargeError",
    "NiftiReadError",
    "PatientInfo",
    "Ssl4misFormatError",
    "StudyInput",
    "acdc_to_internal",
    "atomic_path",
    "atomic_write",
    "atomic_write_text",
    "discover_studies",
    "internal_to_acdc",
    "list_dicom_series",
    "list_ssl4mis_patients",
    "read_acdc_info",
    "read_acdc_patient",
    "read_contour_file",
    "read_dicom_cine",
    "read_dsb_dimensions",
    "read_dsb_volumes",
    "read_nifti_array",
    "read_nifti_study",
    "read_ssl4mis_frame",
    "read_ssl4mis_study",
    "read_study",
    "read_sunnybrook_contours",
    "read_sunnybrook_link",
    "read_sunnybrook_study",
    "write_acdc_patient",
    "write_nifti",
]
