"""The MIT-BIH loader on records in PhysioNet's own format, written by `wfdb` itself.

The other loader tests read records the project writes (`biosignals.data.wfdb_io.write_record`
and the simulator). Here every .hea/.dat/.atr file comes straight from `wfdb.wrsamp` (format
212, 200 adu/mV around baseline 1024, physical values converted by wfdb) and `wfdb.wrann` (no
sampling rate stored, as in the real .atr files), from a hand-made signal whose beats sit at
known samples with known symbols. The quirks of the real database are planted: record 114 lists
V5 before MLII, the paced records 102 and 104 have no MLII at all, the paced ones hold ``/`` and
``f`` beats, and non-beat annotations (rhythm ``+`` with aux notes, noise ``~`` with subtypes,
artefact ``|``, blocked P ``x``, comments ``"``, ventricular flutter ``[ ! ]``) sit between and
on top of beats. Expected window counts, labels and values are computed from the plan, not from
the loader.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from omegaconf import DictConfig, OmegaConf, open_dict

from biosignals.data import aami
from biosignals.data.cache import load_dataset
from biosignals.data.dataset import DatasetError, SignalDataset
from biosignals.data.mitbih import build, segment_record
from biosignals.data.wfdb_io import read_record
from biosignals.train import compose_config

with warnings.catch_warnings():  # wfdb 4.3 calls pandas with inplace=True at import time
    warnings.filterwarnings("ignore", message=r".*inplace keyword.*")
    import wfdb

REPO = Path(__file__).resolve().parents[2]
FS = 360.0
N_SAMPLES = 12 * 360  # 12 s per record (the real ones have 650000 samples)
BEFORE, AFTER = 90, 126  # round(0.25 * 360), round(0.35 * 360): the default window
RR = 300  # samples between the regular beats (72 bpm)
N_REGULAR = 12  # regular beats per record, from sample 400 on

BEAT_SYMBOLS = ("N", "L", "R", "e", "j", "A", "a", "J", "S", "V", "E", "F", "/", "f", "Q")
NON_PACED_SYMBOLS = tuple(s for s in BEAT_SYMBOLS if s not in "/f")  # '/' and 'f': paced only
AMPLITUDE_MV = {s: 0.8 + 0.08 * i for i, s in enumerate(BEAT_SYMBOLS)}
"""R-peak height per symbol (multiples of 0.02 mV: the spike's quarter-height samples stay exact
in 5 uV steps), so a window's centre value tells which beat it was cut from."""
OTHER_LEAD_MV = -0.6  # the second lead dips where MLII peaks: a swapped lead is visible

LEADS = {"100": ("MLII", "V5"), "103": ("MLII", "V2"), "114": ("V5", "MLII"),
         "117": ("MLII", "V2"), "123": ("MLII", "V5"), "124": ("MLII", "V4"),
         "102": ("V5", "V2"), "104": ("V5", "V2")}  # fmt: skip
"""Lead order as in the real headers; every other record is (MLII, V1)."""


@dataclass(frozen=True)
class PlannedRecord:
    """What one fixture record holds.

    Attributes:
        name: record name.
        sig_names: lead names in file order.
        beats: (sample, symbol) of every beat annotation, increasing.
        signal: the planted physical signal in mV, shape (N_SAMPLES, 2).
    """

    name: str
    sig_names: tuple[str, str]
    beats: tuple[tuple[int, str], ...]
    signal: npt.NDArray[np.float64]

    @property
    def mlii(self) -> int:
        """Column of MLII (0 where the record has none, as the loader falls back)."""
        return self.sig_names.index("MLII") if "MLII" in self.sig_names else 0

    def kept(self) -> list[tuple[int, str]]:
        """Beats whose default window fits inside the record."""
        return [(p, s) for p, s in self.beats if p - BEFORE >= 0 and p + AFTER <= N_SAMPLES]

    def class_counts(self, scheme: str) -> npt.NDArray[np.int64]:
        """Expected windows per class under `scheme` (kept beats of kept classes)."""
        table = aami.symbol_to_class_index(scheme)
        counts = np.zeros(len(aami.class_names(scheme)), np.int64)
        for _, s in self.kept():
            if s in table:
                counts[table[s]] += 1
        return counts


def _spike(signal: npt.NDArray[np.float64], pos: int, height: float) -> None:
    """Add a 5-sample triangular QRS peaking at `pos` (heights h/4, h/2, h, h/2, h/4)."""
    for offset, share in ((-2, 0.25), (-1, 0.5), (0, 1.0), (1, 0.5), (2, 0.25)):
        signal[pos + offset] += height * share


def _plan(name: str, index: int) -> PlannedRecord:
    """The beats and signal of record `name`; `index` varies the edge cases between records.

    Each record has one beat at each end, just inside (samples 90 and N-126: windows touching
    the record's first and last sample) or just outside (89 and N-125) the window's reach,
    alternating between records, then 12 regular beats whose symbols rotate through the beat
    symbols (paced records: N, V, / and f; others: every symbol but / and f), with every third
    beat an N.
    """
    paced = name in aami.PACED_RECORDS
    symbols = ("/", "f", "/", "V", "N") if paced else NON_PACED_SYMBOLS
    first = 90 if index % 2 == 0 else 89
    last = N_SAMPLES - AFTER if index % 3 == 0 else N_SAMPLES - AFTER + 1
    regular = [
        (400 + k * RR, "N" if k % 3 == 2 else symbols[(index * 5 + k) % len(symbols)])
        for k in range(N_REGULAR)
    ]
    beats = ((first, "/" if paced else "N"), *regular, (last, symbols[index % len(symbols)]))
    sig_names = LEADS.get(name, ("MLII", "V1"))
    signal = np.zeros((N_SAMPLES, 2))
    mlii = sig_names.index("MLII") if "MLII" in sig_names else 0
    for pos, sym in beats:
        _spike(signal[:, mlii], pos, AMPLITUDE_MV[sym])
        _spike(signal[:, 1 - mlii], pos, OTHER_LEAD_MV)
    return PlannedRecord(name, sig_names, beats, signal)


def _non_beats(record: PlannedRecord) -> tuple[list[int], list[str], list[int], list[str]]:
    """Non-beat annotations as the real files have them: (samples, symbols, subtypes, aux)."""
    b = [p for p, _ in record.beats]
    return (
        [
            18,
            b[1],
            b[2] + 100,
            b[3] + 150,
            b[4] + 120,
            b[5] + 80,
            b[6],
            *(b[7] + 60 + 40 * k for k in range(3)),
        ],
        ["+", "+", "~", "~", "|", "x", '"', "[", "!", "]"],
        [0, 0, 1, 0, 0, 0, 0, 0, 0, 0],  # '~' subtype: which leads are noisy (1 = the first)
        ["(N", "(AFIB", "", "", "", "", "no beat here", "", "", ""],
    )


def _write(record: PlannedRecord, directory: Path) -> None:
    """Write `record` with wfdb's own writers, the way PhysioNet's MIT-BIH files look."""
    samples, symbols, subtypes, aux = _non_beats(record)
    ann = sorted(
        [(p, 1, s, 0, "") for p, s in record.beats]
        + [(p, 0, s, t, a) for p, s, t, a in zip(samples, symbols, subtypes, aux, strict=True)]
    )  # a non-beat on a beat's sample comes first, as a rhythm change does in the real files
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*inplace keyword.*")
        wfdb.wrsamp(
            record.name,
            fs=FS,
            units=["mV", "mV"],
            sig_name=list(record.sig_names),
            p_signal=record.signal,
            fmt=["212", "212"],
            adc_gain=[200.0, 200.0],
            baseline=[1024, 1024],
            comments=["69 M 1085 1629 x1", "Aldomet, Inderal"],
            write_dir=str(directory),
        )
        wfdb.wrann(
            record.name,
            "atr",
            np.array([a[0] for a in ann], dtype=np.int64),
            symbol=[a[2] for a in ann],
            subtype=np.array([a[3] for a in ann], dtype=np.int64),
            chan=np.zeros(len(ann), dtype=np.int64),
            num=np.zeros(len(ann), dtype=np.int64),
            aux_note=[a[4] for a in ann],
            write_dir=str(directory),
        )


@dataclass(frozen=True)
class RealFormatDb:
    """The fixture database: its directory and the plan of each record."""

    directory: Path
    records: dict[str, PlannedRecord]

    def counts(self, names: list[str], scheme: str) -> npt.NDArray[np.int64]:
        """Expected windows per class over the records `names`."""
        total = np.zeros(len(aami.class_names(scheme)), np.int64)
        for name in names:
            total += self.records[name].class_counts(scheme)
        return total


@pytest.fixture(scope="module")
def real_db(tmp_path_factory: pytest.TempPathFactory) -> RealFormatDb:
    """All 48 MIT-BIH record names, 12 s each, written by wfdb in the real database's format."""
    directory = tmp_path_factory.mktemp("mitdb")
    records = {name: _plan(name, i) for i, name in enumerate(aami.MITBIH_RECORDS)}
    for record in records.values():
        _write(record, directory)
    (directory / "RECORDS").write_text("\n".join(records) + "\n")  # as PhysioNet ships it
    return RealFormatDb(directory, records)


@pytest.fixture(scope="module")
def default_build(real_db: RealFormatDb) -> SignalDataset:
    """`build` with the real configs' defaults: all 44 records, no explicit record list."""
    return build(real_db.directory, "aami3", val_records=["114", "201", "203"])


def test_fixture_is_in_the_real_format(real_db: RealFormatDb) -> None:
    header = (real_db.directory / "114.hea").read_text().splitlines()
    assert header[0].split() == ["114", "2", "360", str(N_SAMPLES)]
    fields = [line.split() for line in header[1:3]]
    assert [(f[0], f[1], f[2], f[-1]) for f in fields] == [
        ("114.dat", "212", "200.0(1024)/mV", "V5"), ("114.dat", "212", "200.0(1024)/mV", "MLII")
    ]  # fmt: skip
    assert (real_db.directory / "114.dat").stat().st_size == N_SAMPLES * 3  # 2 x 12 bit / sample
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*inplace keyword.*")
        ann = wfdb.rdann(str(real_db.directory / "114"), "atr")
    assert b"time resolution" not in (real_db.directory / "114.atr").read_bytes()  # as PhysioNet
    assert {"+", "~", "|", "x", '"', "[", "!", "]"} <= set(ann.symbol)


def test_physionet_header_layout_reads_the_same(real_db: RealFormatDb, tmp_path: Path) -> None:
    """PhysioNet's headers give no baseline ("212 200 11 1024 ..."): it defaults to ADC zero."""
    planned = real_db.records["100"]
    _write(planned, tmp_path)
    lines = (tmp_path / "100.hea").read_text().splitlines()
    physionet = [lines[0]]
    for line in lines[1:3]:
        f = line.split()  # name fmt gain(baseline)/units adc_res adc_zero init checksum block sig
        physionet.append(" ".join([f[0], f[1], "200", "11", "1024", *f[5:]]))
    (tmp_path / "100.hea").write_text("\n".join([*physionet, *lines[3:]]) + "\n")
    rec = read_record(tmp_path, "100")
    assert rec.sig_names == ["MLII", "V5"] and rec.comments == ["69 M 1085 1629 x1",
                                                                "Aldomet, Inderal"]  # fmt: skip
    np.testing.assert_allclose(rec.signal, planned.signal, atol=1e-6)


def test_read_record_keeps_planted_beats_and_values(real_db: RealFormatDb) -> None:
    planned = real_db.records["114"]
    rec = read_record(real_db.directory, "114")
    assert rec.sig_names == ["V5", "MLII"] and rec.fs == FS
    is_beat = [s in aami.SYMBOL_TO_AAMI for s in rec.ann_symbols]
    beats = [
        (int(p), s) for p, s, b in zip(rec.ann_samples, rec.ann_symbols, is_beat, strict=True) if b
    ]
    assert beats == list(planned.beats)
    np.testing.assert_allclose(rec.signal, planned.signal, atol=1e-6)  # exact in 5 uV steps
    assert rec.ann_aux[rec.ann_symbols.index("+")] == "(N"


@pytest.mark.parametrize("scheme", ["aami3", "aami5"])
def test_windows_sit_on_the_planted_r_peaks(real_db: RealFormatDb, scheme: str) -> None:
    for name in ("100", "114", "201"):
        planned = real_db.records[name]
        seg = segment_record(read_record(real_db.directory, name), scheme, bandpass_hz=None)
        table = aami.symbol_to_class_index(scheme)
        kept = [(p, s) for p, s in planned.kept() if s in table]
        assert seg.x.shape == (len(kept), 1, BEFORE + AFTER) and seg.channels == ["MLII"]
        assert seg.y.tolist() == [table[s] for _, s in kept]
        mlii = planned.signal[:, planned.mlii]
        z = (mlii - mlii.mean()) / (mlii.std() + 1e-6)  # the loader's per-record z-score
        expected = np.stack([z[p - BEFORE : p + AFTER] for p, _ in kept])
        np.testing.assert_allclose(seg.x[:, 0], expected, atol=1e-4)
        peaks = (np.array([AMPLITUDE_MV[s] for _, s in kept]) - mlii.mean()) / (mlii.std() + 1e-6)
        np.testing.assert_allclose(seg.x[:, 0, BEFORE], peaks, atol=1e-4)
        assert seg.symbol_counts == dict(Counter(s for _, s in kept))


def test_record_114_uses_mlii_by_name(real_db: RealFormatDb) -> None:
    rec = read_record(real_db.directory, "114")
    seg = segment_record(rec, "aami3")  # default band-pass: a zero-phase filter keeps the peak
    assert seg.channels == ["MLII"]
    assert np.all(seg.x[:, 0].argmax(axis=-1) == BEFORE)  # MLII peaks up; V5 (column 0) dips
    two = segment_record(rec, "aami3", n_leads=2)
    assert two.channels == ["MLII", "V5"]
    assert np.all(two.x[:, 1].argmin(axis=-1) == BEFORE)
    np.testing.assert_array_equal(two.x[:, 0], seg.x[:, 0])
    half = segment_record(rec, "aami3", sampling_rate=180.0)  # the R peaks move with the rate
    assert half.x.shape == (len(seg.y), 1, 45 + 63)
    assert np.all(half.x[:, 0].argmax(axis=-1) == 45)


def test_q_class_symbols_map_the_aami_way(real_db: RealFormatDb) -> None:
    """'/', 'f' and 'Q' are AAMI class Q: kept as Q under aami5, dropped under aami3."""
    for name in ("217", "208"):  # paced (holds / and f) and non-paced (holds Q)
        rec = read_record(real_db.directory, name)
        planned = real_db.records[name]
        q_kept = sum(1 for _, s in planned.kept() if s in "/fQ")
        assert q_kept > 0
        seg5 = segment_record(rec, "aami5")
        seg3 = segment_record(rec, "aami3")
        assert int((seg5.y == aami.AAMI5_CLASSES.index("Q")).sum()) == q_kept
        assert len(seg5.y) - len(seg3.y) == q_kept + sum(1 for _, s in planned.kept() if s == "F")
        assert not {"/", "f", "Q", "F"} & set(seg3.symbol_counts)
    assert aami.map_symbols(["/", "f", "Q", "F"], "aami5").tolist() == [4, 4, 4, 3]
    assert aami.map_symbols(["/", "f", "Q", "F", "+", "~", "|", "x", '"'], "aami3").tolist() == (
        [-1] * 9
    )


def test_non_beats_and_edge_beats_make_no_windows(real_db: RealFormatDb) -> None:
    for name in ("100", "101", "103", "105", "106", "108"):
        planned = real_db.records[name]
        seg = segment_record(read_record(real_db.directory, name), "aami5")
        dropped = len(planned.beats) - len(planned.kept())
        edge = aami.MITBIH_RECORDS.index(name)
        assert dropped == (edge % 2) + (edge % 3 != 0)  # 89 and N-125 leave; 90 and N-126 stay
        assert len(seg.y) == len(planned.kept())  # one window per kept beat, none per non-beat


def test_build_counts_and_inter_patient_split(
    real_db: RealFormatDb, default_build: SignalDataset
) -> None:
    ds = default_build
    records = ds.meta["records"]
    assert isinstance(records, dict)
    assert records["val"] == ["114", "201", "203"]
    assert sorted(records["train"]) == sorted(set(aami.DS1_RECORDS) - {"114", "201", "203"})
    assert records["test"] == list(aami.DS2_RECORDS)
    for split in ("train", "val", "test"):
        names = records[split]
        assert set(ds.split(split).groups.tolist()) == set(names), split
        np.testing.assert_array_equal(ds.class_counts(split), real_db.counts(names, "aami3"))
        per_record = Counter(ds.split(split).groups.tolist())
        for name in names:
            assert per_record[name] == int(real_db.records[name].class_counts("aami3").sum())
    everything = set(ds.train.groups) | set(ds.val.groups) | set(ds.test.groups)
    assert not everything & set(aami.PACED_RECORDS)  # 102, 104, 107, 217: never used
    assert (ds.in_channels, ds.input_length) == (1, BEFORE + AFTER)  # MLII only, RR off


def test_build_default_validation_is_a_ds1_subset(real_db: RealFormatDb) -> None:
    ds = build(real_db.directory, "aami3")
    records = ds.meta["records"]
    assert isinstance(records, dict)
    val, train = set(records["val"]), set(records["train"])
    assert val and not val & train and val | train == set(aami.DS1_RECORDS)
    assert set(ds.val.groups.tolist()) == val and set(ds.test.groups.tolist()) == set(
        aami.DS2_RECORDS
    )


def test_build_takes_a_subset_and_ignores_paced_records(real_db: RealFormatDb) -> None:
    subset = ["100", "101", "102", "114", "201", "203", "217"]
    ds = build(real_db.directory, "aami5", records=subset, val_records=["114"])
    records = ds.meta["records"]
    assert isinstance(records, dict)
    assert (records["train"], records["val"], records["test"]) == (["101", "201", "203"],
                                                                    ["114"], ["100"])  # fmt: skip
    np.testing.assert_array_equal(ds.class_counts("test"), real_db.counts(["100"], "aami5"))
    np.testing.assert_array_equal(
        ds.class_counts("train"), real_db.counts(["101", "201", "203"], "aami5")
    )


def test_build_needs_every_record_without_a_list(tmp_path: Path, real_db: RealFormatDb) -> None:
    for name in ("100", "101", "102", "114", "201", "203"):
        _write(real_db.records[name], tmp_path)
    with pytest.raises(DatasetError, match=r"lacks records \['103', '105'"):
        build(tmp_path)
    ds = build(tmp_path, records=["100", "101", "114", "201", "203"], val_records=["201"])
    assert set(ds.test.groups.tolist()) == {"100"}


def _real_dataset_cfg(real_db: RealFormatDb, name: str = "mitbih_aami3") -> DictConfig:
    cfg = OmegaConf.load(REPO / "configs" / "dataset" / f"{name}.yaml")
    assert isinstance(cfg, DictConfig)
    with open_dict(cfg):
        cfg.data_dir = str(real_db.directory)
    return cfg


@pytest.mark.parametrize("name", ["mitbih_aami3", "mitbih_aami5"])
def test_shipped_dataset_configs_build_and_cache(
    real_db: RealFormatDb, tmp_path: Path, name: str
) -> None:
    cfg = _real_dataset_cfg(real_db, name)
    ds = load_dataset(cfg, tmp_path)
    scheme = str(cfg.classes)
    assert ds.class_names == aami.class_names(scheme)
    assert ds.meta["channels"] == ["MLII"]
    assert ds.num_features == 9  # the configs turn the RR side features on
    records = ds.meta["records"]
    assert isinstance(records, dict)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(
            ds.class_counts(split), real_db.counts(records[split], scheme)
        )
    entries = list((tmp_path / "datasets").iterdir())
    again = load_dataset(cfg, tmp_path)  # from the cache entry: nothing rebuilt
    assert list((tmp_path / "datasets").iterdir()) == entries
    assert again.meta == ds.meta and again.class_names == ds.class_names
    for split in ("train", "val", "test"):
        a, b = ds.split(split), again.split(split)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.groups, b.groups)


def test_real_experiment_builds_from_the_directory(real_db: RealFormatDb, tmp_path: Path) -> None:
    cfg = compose_config(["experiment=mitbih_aami3_real", f"dataset.data_dir={real_db.directory}"])
    ds = load_dataset(cfg.dataset, tmp_path)
    assert ds.name == "mitbih/aami3" and ds.meta["source"] == str(real_db.directory)
    groups = set(ds.train.groups) | set(ds.val.groups)
    assert groups == set(aami.DS1_RECORDS) and set(ds.test.groups) == set(aami.DS2_RECORDS)
    assert int(sum(ds.class_counts(s).sum() for s in ("train", "val", "test"))) == int(
        real_db.counts(list(aami.DS1_RECORDS + aami.DS2_RECORDS), "aami3").sum()
    )
