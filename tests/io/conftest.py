"""tests/io under pydicom 2.4 too (the MONAI Label environment, ``make label``, pins pydicom < 3).

``test_transfer_syntaxes.py`` builds its compressed streams with pydicom 3's ``pydicom.pixels`` API and
runs only under pydicom 3 (the core environment); every other DICOM test runs under both.
"""

from __future__ import annotations

import pydicom

collect_ignore = [] if int(pydicom.__version__.split(".")[0]) >= 3 else ["test_transfer_syntaxes.py"]
