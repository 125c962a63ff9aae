"""AAMI EC57 beat classes and the MIT-BIH inter-patient record split.

The MIT-BIH Arrhythmia Database annotates each beat with a symbol (``N``, ``L``, ``A``, ``V``,
...). The AAMI EC57 standard groups them into five classes, and the inter-patient protocol of
de Chazal et al. (2004) splits the 44 non-paced records into DS1 (training) and DS2 (test):

====  ==============================  =============================================
AAMI  meaning                         MIT-BIH symbols
====  ==============================  =============================================
N     normal and bundle-branch block  ``N`` ``L`` ``R`` ``e`` (atrial escape) ``j`` (nodal escape)
S     supraventricular ectopic        ``A`` ``a`` ``J`` ``S``
V     ventricular ectopic             ``V`` ``E`` (ventricular escape)
F     fusion of ventricular + normal  ``F``
Q     paced / unclassifiable          ``/`` ``f`` ``Q``
====  ==============================  =============================================

The 3-class variant keeps N, S and V and drops F and Q beats (they are about 0.9 % of the
non-paced beats, and most inter-patient papers that report N/S/V do the same). Every other
annotation symbol (rhythm changes ``+``, noise ``~``, comments ``"``, ...) is not a beat and is
ignored.

Records 201 and 202 come from the same subject; the standard split nevertheless puts 201 in DS1
and 202 in DS2, and so does this module (each record is its own group), as every published
inter-patient result does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from biosignals.data.dataset import DatasetError

ClassScheme = Literal["aami5", "aami3"]

AAMI5_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")
AAMI3_CLASSES: tuple[str, ...] = ("N", "S", "V")

SYMBOL_TO_AAMI: dict[str, str] = {
    "N": "N",
    "L": "N",
    "R": "N",
    "e": "N",
    "j": "N",
    "A": "S",
    "a": "S",
    "J": "S",
    "S": "S",
    "V": "V",
    "E": "V",
    "F": "F",
    "/": "Q",
    "f": "Q",
    "Q": "Q",
}
"""MIT-BIH beat symbol -> AAMI class letter. Symbols not listed are not beats."""

# de Chazal, O'Dwyer & Reilly, IEEE TBME 51(7), 2004: the inter-patient split.
DS1_RECORDS: tuple[str, ...] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
DS2_RECORDS: tuple[str, ...] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip
PACED_RECORDS: tuple[str, ...] = ("102", "104", "107", "217")
"""Records with a pacemaker; AAMI EC57 and the inter-patient protocol leave them out."""

MITBIH_RECORDS: tuple[str, ...] = tuple(sorted(DS1_RECORDS + DS2_RECORDS + PACED_RECORDS))
"""All 48 MIT-BIH Arrhythmia Database record names, "100" to "234"."""


def class_names(scheme: str) -> list[str]:
    """Class labels in index order for `scheme` ("aami5" or "aami3")."""
    if scheme == "aami5":
        return list(AAMI5_CLASSES)
    if scheme == "aami3":
        return list(AAMI3_CLASSES)
    raise DatasetError(f"classes must be 'aami5' or 'aami3', got {scheme!r}; pick one of the two")


def symbol_to_class_index(scheme: str) -> dict[str, int]:
    """MIT-BIH beat symbol -> class index under `scheme`; symbols of dropped classes are absent.

    Example:
        >>> symbol_to_class_index("aami3")["L"], symbol_to_class_index("aami3")["A"]
        (0, 1)
        >>> "F" in symbol_to_class_index("aami3")
        False
    """
    names = class_names(scheme)
    index = {name: i for i, name in enumerate(names)}
    return {sym: index[cls] for sym, cls in SYMBOL_TO_AAMI.items() if cls in index}


def map_symbols(symbols: Sequence[str], scheme: str) -> npt.NDArray[np.int64]:
    """Map beat symbols to class indices under `scheme`, -1 for non-beats and dropped classes.

    Args:
        symbols: annotation symbols as read from a .atr file.
        scheme: "aami5" or "aami3".

    Returns:
        int64 array, shape (len(symbols),): a class index, or -1 where the symbol is not a beat
        (``+``, ``~``, ...) or its class is not in `scheme` (F and Q under "aami3").
    """
    table = symbol_to_class_index(scheme)
    return np.fromiter((table.get(s, -1) for s in symbols), dtype=np.int64, count=len(symbols))
