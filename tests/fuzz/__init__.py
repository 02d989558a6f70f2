"""Seeded fuzzing of the readers with malformed inputs derived from the shared real data (issue 14).

``generators`` builds the inputs (DICOM folders, NIfTI files, SSL4MIS HDF5 folders) in a temp dir,
``runner`` runs what a user runs on each one in a forked child and classifies the outcome.
"""
