"""AAMI class mapping and the MIT-BIH inter-patient record lists."""

from __future__ import annotations

import pytest

from biosignals.data import aami
from biosignals.data.dataset import DatasetError


@pytest.mark.parametrize(
    ("symbol", "aami5", "aami3"),
    [
        ("N", "N", "N"), ("L", "N", "N"), ("R", "N", "N"), ("e", "N", "N"), ("j", "N", "N"),
        ("A", "S", "S"), ("a", "S", "S"), ("J", "S", "S"), ("S", "S", "S"),
        ("V", "V", "V"), ("E", "V", "V"),
        ("F", "F", None), ("/", "Q", None), ("f", "Q", None), ("Q", "Q", None),
        ("+", None, None), ("~", None, None), ("|", None, None), ('"', None, None),
        ("x", None, None), ("!", None, None),
    ],
)  # fmt: skip
def test_symbol_mapping(symbol: str, aami5: str | None, aami3: str | None) -> None:
    for scheme, expected in (("aami5", aami5), ("aami3", aami3)):
        names = aami.class_names(scheme)
        index = int(aami.map_symbols([symbol], scheme)[0])
        assert (names[index] if index >= 0 else None) == expected, (symbol, scheme)


def test_class_names_and_indices() -> None:
    assert aami.class_names("aami5") == ["N", "S", "V", "F", "Q"]
    assert aami.class_names("aami3") == ["N", "S", "V"]
    table = aami.symbol_to_class_index("aami3")
    assert set(table.values()) == {0, 1, 2}
    assert set(aami.symbol_to_class_index("aami5").values()) == {0, 1, 2, 3, 4}


def test_map_symbols_vectorised() -> None:
    y = aami.map_symbols(["N", "+", "A", "V", "F", "/"], "aami5")
    assert y.tolist() == [0, -1, 1, 2, 3, 4]
    assert y.dtype.name == "int64"
    assert aami.map_symbols([], "aami3").shape == (0,)


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(DatasetError, match=r"aami5.*aami3.*got 'aami4'"):
        aami.class_names("aami4")


def test_inter_patient_record_lists() -> None:
    ds1, ds2, paced = set(aami.DS1_RECORDS), set(aami.DS2_RECORDS), set(aami.PACED_RECORDS)
    assert len(ds1) == len(ds2) == 22 and len(paced) == 4
    assert not (ds1 & ds2) and not (ds1 & paced) and not (ds2 & paced)
    assert ds1 | ds2 | paced == set(aami.MITBIH_RECORDS)
    assert len(aami.MITBIH_RECORDS) == 48
    assert aami.MITBIH_RECORDS[0] == "100" and aami.MITBIH_RECORDS[-1] == "234"
