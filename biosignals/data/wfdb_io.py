"""Reading and writing WFDB records (header .hea, signal .dat, beat annotations .atr).

Thin wrappers over the `wfdb` package that fix the conventions of the MIT-BIH Arrhythmia
Database: format 212 (two 12-bit samples in 3 bytes), 200 ADC units per mV, baseline 1024, so
that records written by the simulator (`biosignals.data.ecg_synth`) look like the real ones and
are read back by the same code path (`read_record`) that reads PhysioNet's files. Nothing here
touches the network: `wfdb` is only given local paths.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from biosignals.data.dataset import DatasetError

with warnings.catch_warnings():  # wfdb 4.3 calls pandas with inplace=True at import time
    warnings.filterwarnings("ignore", message=r".*inplace keyword.*")
    import wfdb

logger = logging.getLogger(__name__)

MITBIH_GAIN = 200.0  # ADC units per mV, as in every MIT-BIH header
MITBIH_BASELINE = 1024  # ADC value of 0 mV
_FMT212_MIN, _FMT212_MAX = -2048, 2047  # 12-bit two's complement range of format 212


@contextlib.contextmanager
def _quiet_wfdb() -> Iterator[None]:
    """Silence pandas' deprecation warnings raised inside wfdb (inplace=True under pandas 3)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*inplace keyword.*")
        yield


@dataclass
class EcgRecord:
    """One ECG record in memory.

    Attributes:
        name: record name, e.g. "100".
        signal: physical values in mV, float32, shape (n_samples, n_leads).
        fs: sampling rate in Hz.
        sig_names: lead names in column order, e.g. ["MLII", "V1"].
        ann_samples: annotation positions (sample index), int64, shape (n_ann,), increasing.
        ann_symbols: annotation symbols, length n_ann (beats and non-beats alike).
        ann_aux: auxiliary note per annotation (rhythm labels such as "(AFIB" on "+"
            annotations), length n_ann, or empty when there are none.
        comments: header comment lines (age, sex, medication in the real database).
    """

    name: str
    signal: npt.NDArray[np.float32]
    fs: float
    sig_names: list[str]
    ann_samples: npt.NDArray[np.int64]
    ann_symbols: list[str]
    ann_aux: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def lead(self, name: str | int) -> npt.NDArray[np.float32]:
        """One lead by name ("MLII") or column index, shape (n_samples,)."""
        if isinstance(name, int):
            return self.signal[:, name]
        if name not in self.sig_names:
            raise DatasetError(
                f"record {self.name} has leads {self.sig_names}, not {name!r}; "
                "pick one of those or a column index"
            )
        return self.signal[:, self.sig_names.index(name)]


def write_record(record: EcgRecord, directory: str | Path) -> None:
    """Write `record` as ``<directory>/<name>.hea/.dat/.atr`` in MIT-BIH conventions.

    Signals are quantised to format 212 at 200 ADC units/mV around baseline 1024 (5 uV steps) and
    clipped to the 12-bit range, i.e. about -15.4 mV to +5.1 mV. Annotations are written as
    given (one symbol per sample position).

    Raises:
        DatasetError: the annotation arrays disagree in length or are not increasing.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    samples = np.asarray(record.ann_samples, dtype=np.int64)
    if len(samples) != len(record.ann_symbols):
        raise DatasetError(
            f"record {record.name}: {len(samples)} annotation samples but "
            f"{len(record.ann_symbols)} symbols; give one symbol per sample"
        )
    if len(samples) > 1 and np.any(np.diff(samples) < 0):
        raise DatasetError(f"record {record.name}: annotation samples must be non-decreasing")
    digital = np.rint(record.signal.astype(np.float64) * MITBIH_GAIN) + MITBIH_BASELINE
    np.clip(digital, _FMT212_MIN, _FMT212_MAX, out=digital)
    aux = list(record.ann_aux) if any(record.ann_aux) else None
    if aux is not None and len(aux) != len(samples):
        raise DatasetError(
            f"record {record.name}: {len(aux)} aux notes for {len(samples)} annotations; "
            "give one per annotation or none"
        )
    with _quiet_wfdb():
        _write(record, directory, digital.astype(np.int64), samples, aux)


def _write(
    record: EcgRecord,
    directory: Path,
    digital: npt.NDArray[np.int64],
    samples: npt.NDArray[np.int64],
    aux: list[str] | None,
) -> None:
    n_leads = record.signal.shape[1]
    wfdb.wrsamp(
        record.name,
        fs=record.fs,
        units=["mV"] * n_leads,
        sig_name=list(record.sig_names),
        d_signal=digital,
        fmt=["212"] * n_leads,
        adc_gain=[MITBIH_GAIN] * n_leads,
        baseline=[MITBIH_BASELINE] * n_leads,
        comments=list(record.comments) or None,
        write_dir=str(directory),
    )
    if len(samples):
        wfdb.wrann(
            record.name,
            "atr",
            samples,
            symbol=list(record.ann_symbols),
            aux_note=aux,
            fs=record.fs,
            write_dir=str(directory),
        )


def list_records(directory: str | Path) -> list[str]:
    """Names of the records in `directory` that have both a .hea header and an .atr file, sorted."""
    directory = Path(directory)
    return sorted(p.stem for p in directory.glob("*.hea") if p.with_suffix(".atr").is_file())


def read_record(
    directory: str | Path, name: str, leads: Sequence[str | int] | None = None
) -> EcgRecord:
    """Read record `name` (signal and .atr annotations) from `directory`.

    Args:
        directory: folder holding ``<name>.hea``, its .dat file and ``<name>.atr``.
        name: record name, e.g. "100".
        leads: leads to keep, by name or column index; None keeps all. A name that the record
            lacks raises; use `EcgRecord.lead` for per-record fallbacks instead.

    Raises:
        DatasetError: the files are missing or unreadable.
    """
    directory = Path(directory)
    path = directory / name
    if not path.with_suffix(".hea").is_file() or not path.with_suffix(".atr").is_file():
        raise DatasetError(
            f"record {name!r} needs {path}.hea, its .dat file and {path}.atr; "
            f"found {sorted(p.name for p in directory.glob(name + '.*'))}"
        )
    try:
        with _quiet_wfdb():
            rec = wfdb.rdrecord(str(path), physical=True, return_res=32)
            ann = wfdb.rdann(str(path), "atr")
    except Exception as e:  # wfdb raises a mix of ValueError/OSError/struct errors
        raise DatasetError(f"cannot read WFDB record {path}: {type(e).__name__}: {e}") from e
    signal = np.asarray(rec.p_signal, dtype=np.float32)
    sig_names = [str(s) for s in rec.sig_name]
    if leads is not None:
        cols: list[int] = []
        for lead in leads:
            if isinstance(lead, int):
                cols.append(lead)
            elif lead in sig_names:
                cols.append(sig_names.index(lead))
            else:
                raise DatasetError(f"record {name} has leads {sig_names}, not {lead!r}")
        signal = np.ascontiguousarray(signal[:, cols])
        sig_names = [sig_names[c] for c in cols]
    return EcgRecord(
        name=name,
        signal=signal,
        fs=float(rec.fs),
        sig_names=sig_names,
        ann_samples=np.asarray(ann.sample, dtype=np.int64),
        ann_symbols=[str(s) for s in ann.symbol],
        ann_aux=[str(a) for a in (ann.aux_note or [])],
        comments=[str(c) for c in (rec.comments or [])],
    )
