"""Body surface area, indexed volumes, and adult reference ranges for the clinical indices.

Volumes and mass are indexed to body surface area (BSA) when height and weight are known (DICOM Patient
module, ACDC ``Info.cfg``, or given by the user), and each index is compared with an adult reference range
for short-axis bSSFP cine by sex. The shipped ranges (:data:`SHIPPED_REFERENCE_RANGES`) are published means
and standard deviations with limits mean ± 1.96 SD computed here; every row names its source. They are a
starting point: a laboratory should use its own normal values (segmentation conventions, field strength
and population change them), passed as a JSON file (:func:`load_reference_ranges`). The model's LV blood
pool includes the papillary muscles (ACDC convention), so LV volumes are larger and the mass smaller than
in references that count the papillary muscles as mass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from cardiacseg.clinical.indices import CardiacIndices
from cardiacseg.clinical.report import INDEX_ROWS
from cardiacseg.io.study import PatientInfo
from cardiacseg.typing import PathLike

__all__ = [
    "INDEXED_KEYS",
    "SHIPPED_REFERENCE_RANGES",
    "ReferenceRange",
    "ReferenceSource",
    "ReferenceTable",
    "assess_reference_ranges",
    "body_surface_area_m2",
    "indexed_indices",
    "load_reference_ranges",
]

BsaFormula = Literal["mosteller", "du_bois"]

#: BSA formulas: Mosteller RD, "Simplified calculation of body-surface area", N Engl J Med 1987;317:1098
#: (sqrt(height_cm x weight_kg / 3600)); Du Bois D, Du Bois EF, Arch Intern Med 1916;17:863
#: (0.007184 x weight_kg^0.425 x height_cm^0.725).
_BSA_NAMES = {
    "mosteller": "Mosteller (N Engl J Med 1987;317:1098)",
    "du_bois": "Du Bois (Arch Intern Med 1916)",
}

#: The indices divided by BSA, and the name of each indexed value.
INDEXED_KEYS: dict[str, str] = {
    "lv_edv_ml": "lv_edv_ml_per_m2",
    "lv_esv_ml": "lv_esv_ml_per_m2",
    "lv_sv_ml": "lv_sv_ml_per_m2",
    "lv_mass_g": "lv_mass_g_per_m2",
    "rv_edv_ml": "rv_edv_ml_per_m2",
    "rv_esv_ml": "rv_esv_ml_per_m2",
    "rv_sv_ml": "rv_sv_ml_per_m2",
}

#: Name and unit of every assessed index: those of the report (absolute), then the indexed ones.
_NAMES: dict[str, tuple[str, str]] = {key: (name, unit) for name, key, unit in INDEX_ROWS}
_NAMES.update({INDEXED_KEYS[k]: (f"{_NAMES[k][0]}/BSA", f"{_NAMES[k][1]}/m²") for k in INDEXED_KEYS})

#: Limits from a published mean and SD: mean ± 1.96 SD (the central 95 % of a normal population).
_Z95 = 1.96


def body_surface_area_m2(height_cm: float, weight_kg: float, formula: BsaFormula = "mosteller") -> float:
    """Body surface area in m².

    Args:
        height_cm: height in cm (> 0).
        weight_kg: weight in kg (> 0).
        formula: ``"mosteller"`` (sqrt(height x weight / 3600); Mosteller, N Engl J Med 1987) or
            ``"du_bois"`` (0.007184 x weight^0.425 x height^0.725; Du Bois and Du Bois, 1916).

    Returns:
        BSA in m².

    Raises:
        ValueError: a non-positive height or weight, or an unknown formula.

    Example:
        >>> round(body_surface_area_m2(180.0, 80.0), 4)
        2.0
        >>> round(body_surface_area_m2(180.0, 80.0, "du_bois"), 3)
        1.996

    """
    if not (height_cm > 0 and weight_kg > 0):
        raise ValueError(f"height_cm and weight_kg must be positive, got {height_cm}, {weight_kg}")
    if formula == "mosteller":
        return math.sqrt(height_cm * weight_kg / 3600.0)
    if formula == "du_bois":
        return float(0.007184 * weight_kg**0.425 * height_cm**0.725)
    raise ValueError(f"unknown BSA formula {formula!r}; use 'mosteller' or 'du_bois'")


def indexed_indices(indices: CardiacIndices, bsa_m2: float) -> dict[str, float | None]:
    """Volumes and mass divided by BSA (:data:`INDEXED_KEYS`; ``None`` where the index is unavailable).

    Args:
        indices: the study's indices.
        bsa_m2: body surface area in m² (> 0).

    Returns:
        ``{"lv_edv_ml_per_m2": ..., ...}``.

    Raises:
        ValueError: a non-positive BSA.

    Example:
        >>> indexed_indices(idx, 2.0)["lv_edv_ml_per_m2"]  # doctest: +SKIP
        80.0

    """
    if not bsa_m2 > 0:
        raise ValueError(f"bsa_m2 must be positive, got {bsa_m2}")
    out: dict[str, float | None] = {}
    for key, indexed in INDEXED_KEYS.items():
        value = getattr(indices, key)
        out[indexed] = None if value is None else round(float(value) / bsa_m2, 3)
    return out


@dataclass(frozen=True)
class ReferenceSource:
    """Where a reference range comes from.

    Attributes:
        citation: the publication.
        url: where the values were read.
        note: how the values were taken (e.g. a secondary table, the papillary-muscle convention).

    Example:
        >>> ReferenceSource("Hudsmith LE et al. JCMR 2005;7:775", "https://example.org").citation[:8]
        'Hudsmith'

    """

    citation: str
    url: str = ""
    note: str = ""


@dataclass(frozen=True)
class ReferenceRange:
    """An adult reference range of one index for one sex.

    Attributes:
        key: the index (a :class:`~cardiacseg.clinical.indices.CardiacIndices` field or an indexed key of
            :data:`INDEXED_KEYS`).
        sex: ``"M"`` or ``"F"``.
        lower, upper: the limits (mean ± 1.96 SD when derived from a mean and SD).
        source: key into the table's sources.
        mean, sd: the published mean and standard deviation, when the limits were derived from them.

    Example:
        >>> ReferenceRange.from_mean_sd("lv_ef_percent", "M", 67.0, 5.0, "kb2015").lower
        57.2

    """

    key: str
    sex: Literal["M", "F"]
    lower: float
    upper: float
    source: str
    mean: float | None = None
    sd: float | None = None

    @classmethod
    def from_mean_sd(
        cls, key: str, sex: Literal["M", "F"], mean: float, sd: float, source: str
    ) -> ReferenceRange:
        """Make the range mean ± 1.96 SD (limits rounded to 0.1).

        Args:
            key: the index.
            sex: ``"M"`` or ``"F"``.
            mean: published mean.
            sd: published standard deviation.
            source: key into the table's sources.

        Returns:
            The range.

        """
        return cls(key, sex, round(mean - _Z95 * sd, 1), round(mean + _Z95 * sd, 1), source, mean, sd)


@dataclass(frozen=True)
class ReferenceTable:
    """A set of reference ranges with their sources.

    Attributes:
        name: what the table is (shown in reports).
        ranges: the ranges.
        sources: source key -> :class:`ReferenceSource`.

    Example:
        >>> SHIPPED_REFERENCE_RANGES.lookup("lv_ef_percent", "F").upper
        76.8

    """

    name: str
    ranges: tuple[ReferenceRange, ...]
    sources: Mapping[str, ReferenceSource]

    def lookup(self, key: str, sex: Literal["M", "F"]) -> ReferenceRange | None:
        """Return the range of ``key`` for ``sex`` (``None`` when the table has none)."""
        for r in self.ranges:
            if r.key == key and r.sex == sex:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as read by :func:`load_reference_ranges`."""
        return {
            "name": self.name,
            "sources": {k: asdict(v) for k, v in self.sources.items()},
            "ranges": [asdict(r) for r in self.ranges],
        }


_KB2015 = "Kawel-Boehm 2015"
_HUDSMITH2005 = "Hudsmith 2005"


def _shipped() -> ReferenceTable:
    rows: list[ReferenceRange] = []
    # Kawel-Boehm et al. 2015, adult SSFP LV values (men, women): mean, SD
    lv = {
        "lv_edv_ml": ((160, 27), (132, 23)),
        "lv_edv_ml_per_m2": ((81, 12), (76, 10)),
        "lv_esv_ml": ((54, 14), (44, 11)),
        "lv_esv_ml_per_m2": ((26, 6), (24, 5)),
        "lv_sv_ml": ((108, 18), (87, 15)),
        "lv_sv_ml_per_m2": ((54, 6), (52, 7)),
        "lv_ef_percent": ((67, 5), (67, 5)),
        "lv_mass_g": ((134, 21), (98, 21)),
        "lv_mass_g_per_m2": ((67, 9), (61, 10)),
    }
    # Hudsmith et al. 2005, SSFP RV volumes (men, women)
    rv = {"rv_edv_ml": ((190, 33), (148, 35)), "rv_esv_ml": ((78, 20), (56, 18))}
    for table, source in ((lv, _KB2015), (rv, _HUDSMITH2005)):
        for key, (men, women) in table.items():
            rows.append(ReferenceRange.from_mean_sd(key, "M", float(men[0]), float(men[1]), source))
            rows.append(ReferenceRange.from_mean_sd(key, "F", float(women[0]), float(women[1]), source))
    sources = {
        _KB2015: ReferenceSource(
            "Kawel-Boehm N, Maceira A, Valsangiacomo-Buechel ER, et al. Normal values for cardiovascular "
            "magnetic resonance in adults and children. J Cardiovasc Magn Reson 2015;17:29 "
            "(doi:10.1186/s12968-015-0111-7)",
            "https://pmc.ncbi.nlm.nih.gov/articles/PMC7758747/table/t3",
            "adult bSSFP LV values as tabulated from this review in Cardiovasc Diagn Ther 2020;10:1918 "
            "(doi:10.21037/cdt-20-530), Table 3; limits mean ± 1.96 SD computed by cardiacseg",
        ),
        _HUDSMITH2005: ReferenceSource(
            "Hudsmith LE, Petersen SE, Francis JM, Robson MD, Neubauer S. Normal human left and right "
            "ventricular and left atrial dimensions using steady state free precession magnetic resonance "
            "imaging. J Cardiovasc Magn Reson 2005;7:775-782 (doi:10.1080/10976640500295516)",
            "https://www.cardioscience.ox.ac.uk/publications/104926",
            "108 healthy adults aged 21-68, 1.5 T bSSFP; RV volumes from the abstract; limits mean ± 1.96 SD "
            "computed by cardiacseg",
        ),
    }
    return ReferenceTable(
        "adult bSSFP cine reference ranges (published mean ± 1.96 SD; use your laboratory's own)",
        tuple(rows),
        sources,
    )


#: The shipped adult ranges: LV from Kawel-Boehm et al. 2015, RV EDV/ESV from Hudsmith et al. 2005.
#: RV SV, RV EF and indexed RV volumes have no shipped range (no published values were at hand); a
#: laboratory's own table (:func:`load_reference_ranges`) can add them.
SHIPPED_REFERENCE_RANGES = _shipped()


def load_reference_ranges(path: PathLike) -> ReferenceTable:
    """Read a reference-range table from JSON.

    The format is that of :meth:`ReferenceTable.to_dict`: ``{"name": str, "sources": {key: {"citation",
    "url", "note"}}, "ranges": [{"key", "sex", "lower", "upper", "source"} or {"key", "sex", "mean",
    "sd", "source"}]}``; a row with ``mean`` and ``sd`` but no limits gets mean ± 1.96 SD.

    Args:
        path: the JSON file.

    Returns:
        The table.

    Raises:
        ValueError: unreadable JSON, an unknown index key, a sex other than M/F, lower > upper, or a row
            naming a source the file does not describe (the message names the file and the row).

    Example:
        >>> table = load_reference_ranges("my_lab_ranges.json")  # doctest: +SKIP

    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p}: not a readable JSON reference-range table ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("ranges"), list):
        raise ValueError(f"{p}: expected an object with a 'ranges' list")
    sources = {
        str(k): ReferenceSource(str(v.get("citation", "")), str(v.get("url", "")), str(v.get("note", "")))
        for k, v in (data.get("sources") or {}).items()
    }
    rows: list[ReferenceRange] = []
    for i, row in enumerate(data["ranges"]):
        where = f"{p}: ranges[{i}]"
        key, sex, source = row.get("key"), row.get("sex"), str(row.get("source", ""))
        if key not in _NAMES:
            raise ValueError(f"{where}: unknown index {key!r}; known: {sorted(_NAMES)}")
        if sex not in ("M", "F"):
            raise ValueError(f"{where}: sex must be 'M' or 'F', got {sex!r}")
        if source not in sources:
            raise ValueError(f"{where}: source {source!r} is not described under 'sources'")
        try:
            if "lower" in row and "upper" in row:
                lower, upper = float(row["lower"]), float(row["upper"])
                mean = None if row.get("mean") is None else float(row["mean"])
                sd = None if row.get("sd") is None else float(row["sd"])
                rng = ReferenceRange(key, sex, lower, upper, source, mean, sd)
            else:
                rng = ReferenceRange.from_mean_sd(key, sex, float(row["mean"]), float(row["sd"]), source)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: needs numeric 'lower' and 'upper', or 'mean' and 'sd' ({exc})"
            ) from exc
        if rng.lower > rng.upper:
            raise ValueError(f"{where}: lower {rng.lower} > upper {rng.upper}")
        rows.append(rng)
    return ReferenceTable(str(data.get("name", p.name)), tuple(rows), sources)


def assess_reference_ranges(
    indices: CardiacIndices,
    patient: PatientInfo | None,
    table: ReferenceTable = SHIPPED_REFERENCE_RANGES,
    bsa_formula: BsaFormula = "mosteller",
    keys: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Index the study to BSA and compare every index with the table's adult range.

    The sex selects the range; when it is unknown a value is called below/above only when it lies outside
    the ranges of both sexes (said in ``reason``). Indexed values need height and weight; patients under
    18 years are not assessed (the ranges are for adults).

    Args:
        indices: the study's indices.
        patient: body size, sex and age (``None``: unknown).
        table: the reference ranges.
        bsa_formula: ``"mosteller"`` or ``"du_bois"``.
        keys: the indices to assess (default: every absolute and indexed index).

    Returns:
        ``{"body_size": {...}, "indexed": {...} or None, "reference_ranges": {"source", "url",
        "population", "sex", "rows": [{"key", "name", "value", "unit", "lower", "upper", "status",
        "reason", "source"}]}}``; ``status`` is ``"within"``, ``"below"``, ``"above"`` or
        ``"not assessed"``.

    Example:
        >>> out = assess_reference_ranges(idx, PatientInfo(180.0, 80.0, "M"))  # doctest: +SKIP
        >>> out["body_size"]["bsa_m2"]  # doctest: +SKIP
        2.0

    """
    p = patient or PatientInfo()
    bsa = (
        round(body_surface_area_m2(p.height_cm, p.weight_kg, bsa_formula), 4)
        if p.height_cm is not None and p.weight_kg is not None
        else None
    )
    body_size = {
        "height_cm": p.height_cm,
        "weight_kg": p.weight_kg,
        "sex": p.sex,
        "age_years": p.age_years,
        "bsa_m2": bsa,
        "bsa_formula": _BSA_NAMES[bsa_formula],
        "source": p.source or "unknown",
    }
    indexed = indexed_indices(indices, bsa) if bsa is not None else None
    values: dict[str, float | None] = {k: getattr(indices, k) for k in _NAMES if hasattr(indices, k)}
    values.update(indexed or {})
    rows = []
    for key in keys or list(_NAMES):
        name, unit = _NAMES[key]
        value = values.get(key)
        if key in INDEXED_KEYS.values() and bsa is None:
            reason = "height and weight unknown: no BSA"
        elif value is None:
            reason = str(indices.unavailable.get(key, "not measured"))
        else:
            reason = ""
        ranges = [r for r in (table.lookup(key, "M"), table.lookup(key, "F")) if r is not None]
        chosen = [r for r in ranges if r.sex == p.sex] if p.sex else ranges
        if not p.sex and len(chosen) == 1:  # one sex's range cannot judge a patient of unknown sex
            chosen = []
            if not reason:
                reason = "sex unknown and the table has a range for one sex only"
        status = "not assessed"
        lower = upper = None
        source = ""
        if not reason and not chosen:
            reason = "no reference range in the table" + (f" for sex {p.sex}" if p.sex else "")
        if not reason and p.age_years is not None and p.age_years < 18:
            reason = f"age {p.age_years:g} years: the ranges are for adults"
        if chosen:
            lower, upper = min(r.lower for r in chosen), max(r.upper for r in chosen)
            source = ", ".join(sorted({r.source for r in chosen}))
        if not reason and value is not None and lower is not None and upper is not None:
            status = "below" if value < lower else "above" if value > upper else "within"
            if not p.sex:
                reason = "sex unknown: outside only if outside the ranges of both sexes"
        rows.append(
            {
                "key": key,
                "name": name,
                "value": None if value is None else round(float(value), 3),
                "unit": unit,
                "lower": lower,
                "upper": upper,
                "status": status,
                "reason": reason,
                "source": source,
            }
        )
    used = sorted({s for r in rows for s in str(r["source"]).split(", ") if s})
    reference = {
        "source": "; ".join(table.sources[s].citation for s in used if s in table.sources),
        "url": " ".join(table.sources[s].url for s in used if s in table.sources and table.sources[s].url),
        "notes": [table.sources[s].note for s in used if s in table.sources and table.sources[s].note],
        "population": table.name,
        "sex": p.sex,
        "rows": rows,
    }
    return {"body_size": body_size, "indexed": indexed, "reference_ranges": reference}
