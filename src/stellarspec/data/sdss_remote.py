"""The paper's data from the network: query SDSS DR10 SpecObj, download the spec files into a cache.

Query (`build_query`): one SQL statement per subclass for astroquery's `SDSS.query_sql` against
DR10's SpecObjAll table (column names from the SDSS schema: snMedian is the FITS SN_MEDIAN_ALL,
snMedian_u..z are SN_MEDIAN[0..4]):

    class = 'STAR', run2d = '26' (legacy SDSS-I/II), subClass = '<exact legacy label>',
    <snr column> BETWEEN lo AND hi, zWarning = 0, sciencePrimary = 1

sciencePrimary = 1 keeps the best spectrum at each sky position, i.e. one per object; the result
is also de-duplicated on bestObjID. Rows come back in specObjID order. The query result is cached
as CSV under the cache directory, keyed by a hash of the SQL, so reruns do not query again.

Download (`download_spectra`): files come from the Science Archive Server,

    https://data.sdss.org/sas/dr10/sdss/spectro/redux/26/spectra/PPPP/spec-PPPP-MMMMM-FFFF.fits

and are written to <cache>/spectra/PPPP/. Each file is streamed to `<name>.part`, its size is
checked against Content-Length (when the server sends one) and it must parse as a complete spec
file (sdss_fits.read_spec, which walks every HDU to the end of the file);
only then is it renamed to its final name. Timeouts, connection errors, HTTP 429/5xx, short bodies
and unparsable files are retried with exponential backoff; other HTTP errors fail at once. A file
that fails every attempt leaves nothing behind and is reported in the manifest with its error.
A rerun skips files already complete, unless their size differs from the size the manifest
recorded (or, with verify_remote=True, from the server's Content-Length): those are re-fetched.

The manifest, <cache>/manifest-<type>.csv, lists every selected spectrum with its URL, local path,
status (fetched | cached | refetched | failed), bytes, attempts and error.
"""
from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import requests

from . import sdss_fits
from ..io import atomic_path
from ..progress import progress

SAS_SPECTRA = "https://data.sdss.org/sas/dr{release}/sdss/spectro/redux/{run2d}/spectra"
CAS_SNR_COLUMNS = {"SN_MEDIAN_ALL": "snMedian", "SN_MEDIAN_U": "snMedian_u",
                   "SN_MEDIAN_G": "snMedian_g", "SN_MEDIAN_R": "snMedian_r",
                   "SN_MEDIAN_I": "snMedian_i", "SN_MEDIAN_Z": "snMedian_z"}
QUERY_COLUMNS = ["specObjID", "bestObjID", "plate", "mjd", "fiberID", "run2d", "class",
                 "subClass", "z", "zWarning", "snMedian", "snMedian_u", "snMedian_g",
                 "snMedian_r", "snMedian_i", "snMedian_z"]
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
MANIFEST_COLUMNS = ["spec_id", "plate", "mjd", "fiberid", "specobjid", "bestobjid", "subclass",
                    "snr", "url", "path", "status", "bytes", "attempts", "error"]
MAX_BACKOFF_S = 60.0
_SAFE_LABEL = re.compile(r"[A-Za-z0-9_.:/+\- ()]+")


class DownloadError(RuntimeError):
    """The query or the download cannot go on; the message says what to do."""


# ----------------------------------------------------------------------------------- query

def build_query(subclass: str, snr_window, *, snr_column: str = "SN_MEDIAN_ALL",
                run2d: str = "26", top: int | None = None) -> str:
    """SQL for one subclass of Table 1 (SkyServer SQL, DR10 SpecObjAll)."""
    if not _SAFE_LABEL.fullmatch(str(subclass)):
        raise ValueError(f"unexpected characters in subclass {subclass!r}")
    if snr_column not in CAS_SNR_COLUMNS:
        raise ValueError(f"snr_column must be one of {sorted(CAS_SNR_COLUMNS)}, got {snr_column!r}")
    lo, hi = (float(v) for v in snr_window)
    if not lo <= hi:
        raise ValueError(f"S/N window [{lo}, {hi}] is empty")
    quoted = str(subclass).replace("'", "''")
    head = f"SELECT TOP {int(top)}" if top else "SELECT"
    columns = ", ".join(f"s.{c}" for c in QUERY_COLUMNS)
    return (f"{head} {columns}\n"
            f"FROM SpecObjAll AS s\n"
            f"WHERE s.class = 'STAR' AND s.run2d = '{run2d}' AND s.subClass = '{quoted}'\n"
            f"  AND s.{CAS_SNR_COLUMNS[snr_column]} BETWEEN {lo!r} AND {hi!r}\n"
            f"  AND s.zWarning = 0 AND s.sciencePrimary = 1\n"
            f"ORDER BY s.specObjID")


def astroquery_sql(data_release: int, timeout: float = 300):
    """A query function for `query_type`: SQL -> DataFrame through astroquery."""
    def run(sql: str) -> pd.DataFrame:
        from astroquery.sdss import SDSS

        table = SDSS.query_sql(sql, data_release=data_release, timeout=timeout)
        return pd.DataFrame(columns=QUERY_COLUMNS) if table is None else table.to_pandas()
    return run


def query_type(cfg: dict, stellar_type: str, query_fn=None, sleep=time.sleep) -> pd.DataFrame:
    """Every DR10 spectrum that Table 1 selects for the type's subclasses, one per object.

    Results are cached in the cache directory under a hash of the SQL.
    """
    sdss = cfg["sdss"]
    cache = Path(sdss["cache_dir"])
    query_fn = query_fn or astroquery_sql(int(sdss.get("data_release", 10)))
    parts = []
    subclasses = cfg["types"][stellar_type].items()
    for subclass, spec in progress(subclasses, f"DR10 query, type {stellar_type}",
                                   unit="subclasses", every=1):
        sql = build_query(subclass, spec["snr"], snr_column=cfg.get("snr_column", "SN_MEDIAN_ALL"),
                          run2d=str(sdss.get("run2d", "26")))
        cached = cache / "queries" / f"{hashlib.sha256(sql.encode()).hexdigest()[:16]}.csv"
        if cached.exists():
            rows = pd.read_csv(cached)
        else:
            rows = _with_retries(lambda: query_fn(sql), int(sdss.get("max_retries", 5)), sleep,
                                 what=f"the SDSS DR{sdss.get('data_release', 10)} query for "
                                      f"{subclass}")
            with atomic_path(cached) as tmp:
                rows.to_csv(tmp, index=False)
        rows = rows.assign(query_subclass=subclass)
        parts.append(rows)
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=QUERY_COLUMNS)
    if rows.empty:
        return rows
    snr = CAS_SNR_COLUMNS[cfg.get("snr_column", "SN_MEDIAN_ALL")]
    rows = rows.sort_values([snr, "specObjID"], ascending=[False, True], kind="stable")
    # bestObjID 0 means no photometric match: such spectra are not duplicates of each other.
    duplicate = (rows["bestObjID"] > 0) & rows.duplicated("bestObjID")
    return rows[~duplicate].sort_values("specObjID").reset_index(drop=True)


def _with_retries(call, max_retries: int, sleep, what: str):
    for attempt in range(max_retries + 1):
        try:
            return call()
        except Exception as err:  # astroquery raises several kinds on network trouble
            if attempt == max_retries:
                raise DownloadError(
                    f"{what} failed {max_retries + 1} times ({type(err).__name__}: {err}). "
                    f"With no network, set sdss.spec_dir to a directory of spec files, or use "
                    f"source: simulated | templates | table.") from err
            sleep(min(MAX_BACKOFF_S, 2.0 ** attempt))


# -------------------------------------------------------------------------------- download

def spec_name(plate: int, mjd: int, fiber: int) -> str:
    return f"spec-{int(plate):04d}-{int(mjd):05d}-{int(fiber):04d}.fits"


def spec_url(plate: int, mjd: int, fiber: int, run2d: str = "26", release: int = 10) -> str:
    base = SAS_SPECTRA.format(release=release, run2d=run2d)
    return f"{base}/{int(plate):04d}/{spec_name(plate, mjd, fiber)}"


@dataclass
class FetchResult:
    status: str   # fetched | failed
    bytes: int
    attempts: int
    error: str


class _Retry(Exception):
    pass


def fetch_file(session: requests.Session, url: str, dest: Path, *, max_retries: int = 5,
               backoff: float = 1.0, timeout: float = 60.0, sleep=time.sleep) -> FetchResult:
    """Download url to dest through dest.part; dest appears only complete and verified."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    error = ""
    for attempt in range(1, max_retries + 2):
        try:
            written = _stream_to(session, url, part, timeout)
            sdss_fits.read_spec(part)  # complete and usable, or SpecFileError
            os.replace(part, dest)
            return FetchResult("fetched", written, attempt, "")
        except _Retry as err:
            error = str(err)
        except sdss_fits.SpecFileError as err:
            error = f"downloaded file is not a usable spec file ({err})"
        except requests.RequestException as err:
            error = f"{type(err).__name__}: {err}"
        except DownloadError as err:  # permanent, e.g. HTTP 404
            _remove(part)
            return FetchResult("failed", 0, attempt, str(err))
        finally:
            _remove(part)  # after a success it was renamed away already
        if attempt <= max_retries:
            sleep(min(MAX_BACKOFF_S, backoff * 2 ** (attempt - 1)))
    return FetchResult("failed", 0, max_retries + 1, error)


def _stream_to(session, url: str, part: Path, timeout: float) -> int:
    with session.get(url, stream=True, timeout=timeout) as resp:
        if resp.status_code in RETRY_STATUS:
            raise _Retry(f"HTTP {resp.status_code} from {url}")
        if resp.status_code != 200:
            raise DownloadError(f"HTTP {resp.status_code} from {url}")
        expected = resp.headers.get("Content-Length")
        written = 0
        with open(part, "wb") as fh:
            for chunk in resp.iter_content(chunk_size=1 << 16):
                fh.write(chunk)
                written += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    if expected is not None and written != int(expected):
        raise _Retry(f"truncated body: got {written} of {expected} bytes from {url}")
    return written


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def remote_size(session, url: str, timeout: float) -> int | None:
    """The server's Content-Length for url, or None if it cannot be had right now."""
    try:
        resp = session.head(url, timeout=timeout, allow_redirects=True)
    except requests.RequestException:
        return None  # keep the cached file; a later rerun can check again
    length = resp.headers.get("Content-Length")
    return int(length) if resp.status_code == 200 and length is not None else None


def download_spectra(selection: pd.DataFrame, cache_dir, manifest_path, *, run2d: str = "26",
                     release: int = 10, max_retries: int = 5, backoff: float = 1.0,
                     timeout: float = 60.0, session: requests.Session | None = None,
                     sleep=time.sleep, verify_remote: bool = False) -> pd.DataFrame:
    """Fetch the spec file of every selected row (columns as `query_type` returns) into the cache.

    Returns the manifest (also written to manifest_path). Never raises for one bad file.
    """
    cache_dir = Path(cache_dir)
    session = session or _default_session()
    recorded = _recorded_sizes(manifest_path)
    rows = []
    for i, sel in enumerate(progress(selection.itertuples(index=False), "downloading spectra",
                                     total=len(selection), every=100)):
        plate, mjd, fiber = int(sel.plate), int(sel.mjd), int(sel.fiberID)
        url = spec_url(plate, mjd, fiber, run2d, release)
        dest = cache_dir / "spectra" / f"{plate:04d}" / spec_name(plate, mjd, fiber)
        status, result = "fetched", None
        if dest.exists():
            changed = _size_changed(dest, recorded.get(str(dest)), session, url, timeout,
                                    verify_remote)
            if changed is None and _is_complete(dest):
                result = FetchResult("cached", dest.stat().st_size, 0, "")
                status = "cached"
            else:
                status = "refetched"
        if result is None:
            result = fetch_file(session, url, dest, max_retries=max_retries, backoff=backoff,
                                timeout=timeout, sleep=sleep)
            if result.status == "failed":
                status = "failed"
                _remove(dest)  # a stale file that failed to refresh is not kept as current
        rows.append({"spec_id": dest.stem, "plate": plate, "mjd": mjd, "fiberid": fiber,
                     "specobjid": getattr(sel, "specObjID", ""),
                     "bestobjid": getattr(sel, "bestObjID", ""),
                     "subclass": getattr(sel, "subClass", ""),
                     "snr": getattr(sel, "snMedian", float("nan")), "url": url,
                     "path": str(dest), "status": status, "bytes": result.bytes,
                     "attempts": result.attempts, "error": result.error})
        if (i + 1) % 100 == 0:  # a crash loses little; the files themselves are always whole
            _write_manifest(manifest_path, rows)
    manifest = _write_manifest(manifest_path, rows)
    return manifest


def _default_session() -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = "stellarspec (github: reproduce Liu & Wang 2022)"
    return session


def _recorded_sizes(manifest_path) -> dict:
    try:
        old = pd.read_csv(manifest_path)
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return {}
    ok = old[old["status"] != "failed"]
    return {str(p): int(b) for p, b in zip(ok["path"], ok["bytes"])}


def _size_changed(dest: Path, recorded, session, url, timeout, verify_remote) -> str | None:
    size = dest.stat().st_size
    if recorded is not None and size != recorded:
        return f"local size {size} != recorded {recorded}"
    if verify_remote:
        remote = remote_size(session, url, timeout)
        if remote is not None and remote != size:
            return f"server now has {remote} bytes, cache has {size}"
    return None


def _is_complete(path: Path) -> bool:
    try:
        sdss_fits.read_spec(path)
    except sdss_fits.SpecFileError:
        return False
    return True


def _write_manifest(path, rows) -> pd.DataFrame:
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    with atomic_path(path) as tmp:
        manifest.to_csv(tmp, index=False)
    return manifest


def fetch_type(cfg: dict, stellar_type: str, *, select=None, query_fn=None, session=None,
               sleep=time.sleep) -> pd.DataFrame:
    """Query DR10 for a type and download its spectra; returns the manifest.

    `select` (DataFrame -> DataFrame) trims the query result before download, e.g. to the target
    count per subclass, so that only the spectra that will be used are fetched.
    """
    sdss = cfg["sdss"]
    selection = query_type(cfg, stellar_type, query_fn=query_fn, sleep=sleep)
    if select is not None and not selection.empty:
        selection = select(selection)
    cache = Path(sdss["cache_dir"])
    return download_spectra(selection, cache, cache / f"manifest-{stellar_type}.csv",
                            run2d=str(sdss.get("run2d", "26")),
                            release=int(sdss.get("data_release", 10)),
                            max_retries=int(sdss.get("max_retries", 5)), session=session,
                            sleep=sleep, verify_remote=bool(sdss.get("verify_remote", False)))
