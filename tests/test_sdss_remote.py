"""DR10 query building and the download cache, with the network faked at the HTTP layer.

A FakeServer is a requests transport adapter mounted on a real requests.Session: every request
goes through requests' own machinery and ends in a scripted answer (a timeout, HTTP 500, a short
body, a stall mid-body, a changed file). No test touches the network.
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ReadTimeoutError

from stellarspec import selection
from stellarspec.data import sdss_fits, sdss_remote, sources
from stellarspec.data.sdss_remote import (DownloadError, build_query, download_spectra, fetch_file,
                                     spec_url)

LEGACY_M1 = [(618, 52049, 372), (1079, 52621, 509)]


# ------------------------------------------------------------------------------ fake server

class FakeRaw:
    """A response body that can stop early (stall_after) like a socket read timeout."""

    def __init__(self, body: bytes, stall_after: int | None = None):
        self.body, self.stall_after, self.closed = body, stall_after, False

    def stream(self, chunk_size, decode_content=True):
        for start in range(0, len(self.body), chunk_size):
            if self.stall_after is not None and start >= self.stall_after:
                raise ReadTimeoutError(None, "fake", "Read timed out.")
            yield self.body[start:start + chunk_size]

    def read(self, *args, **kwargs):
        return self.body

    def close(self):
        self.closed = True


class FakeServer(BaseAdapter):
    """Answers each URL from a script: a list of actions, one per request (the last repeats)."""

    def __init__(self, files: dict[str, bytes], scripts: dict[str, list] | None = None):
        super().__init__()
        self.files, self.scripts = dict(files), dict(scripts or {})
        self.requests: list[tuple[str, str]] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.requests.append((request.method, request.url))
        script = self.scripts.get(request.url, [])
        action = (script.pop(0) if len(script) > 1 else script[0]) if script else "ok"
        body = self.files.get(request.url)
        if action == "timeout":
            raise requests.exceptions.ConnectTimeout(f"connect to {request.url} timed out")
        if body is None or action == 404:
            return self.response(request, 404, b"not found")
        if isinstance(action, int):
            return self.response(request, action, b"server error")
        if action == "html":
            return self.response(request, 200, b"<html>maintenance</html>")
        if action == "short":  # Content-Length promises more than arrives
            return self.response(request, 200, body[:len(body) // 3], length=len(body))
        if action == "stall":  # the connection dies half-way through the body
            return self.response(request, 200, body, stall_after=len(body) // 2)
        if action == "crash":  # the process is killed while writing
            raise KeyboardInterrupt
        return self.response(request, 200, b"" if request.method == "HEAD" else body,
                             length=len(body))

    @staticmethod
    def response(request, status, body, length=None, stall_after=None):
        resp = requests.Response()
        resp.status_code, resp.request, resp.url = status, request, request.url
        resp.headers = CaseInsensitiveDict(
            {"Content-Length": str(len(body) if length is None else length)})
        resp.raw = FakeRaw(body, stall_after)
        return resp

    def close(self):
        pass


def session_for(server: FakeServer) -> requests.Session:
    session = requests.Session()
    session.mount("https://", server)
    session.mount("http://", server)
    return session


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def served(shared_data, lite=False) -> dict[str, bytes]:
    """The real legacy M1 files at their DR10 URLs."""
    folder = shared_data / "sdss" / ("spectra-lite" if lite else "spectra")
    out = {}
    for plate, mjd, fiber in LEGACY_M1:
        name = f"spec-{plate:04d}-{mjd:05d}-{fiber:04d}{'-lite' if lite else ''}.fits"
        out[spec_url(plate, mjd, fiber)] = (folder / name).read_bytes()
    return out


def selection_rows() -> pd.DataFrame:
    return pd.DataFrame({"specObjID": [1, 2], "bestObjID": [11, 12],
                         "plate": [p for p, _, _ in LEGACY_M1],
                         "mjd": [m for _, m, _ in LEGACY_M1],
                         "fiberID": [f for _, _, f in LEGACY_M1], "subClass": ["M1", "M1"],
                         "snMedian": [50.09, 23.99], "query_subclass": ["M1", "M1"]})


def assert_clean_cache(cache: Path, expected: dict[str, bytes]):
    """Only complete, readable files under their final names; no .part anywhere."""
    assert not list(cache.rglob("*.part"))
    names = {spec_url(*(int(x) for x in Path(u).stem.split("-")[1:])).rsplit("/", 1)[1]: b
             for u, b in expected.items()}
    for path in cache.rglob("*.fits"):
        assert path.read_bytes() == names[path.name]
        sdss_fits.read_spec(path)


# ----------------------------------------------------------------------------------- query

def test_build_query_has_every_table1_condition():
    sql = build_query("K1", [60, 65])
    for clause in ("FROM SpecObjAll AS s", "s.class = 'STAR'", "s.run2d = '26'",
                   "s.subClass = 'K1'", "s.snMedian BETWEEN 60.0 AND 65.0", "s.zWarning = 0",
                   "s.sciencePrimary = 1", "ORDER BY s.specObjID"):
        assert clause in sql
    assert sql.startswith("SELECT s.specObjID, s.bestObjID, s.plate, s.mjd, s.fiberID")
    sql = build_query("F5", (65, 70), snr_column="SN_MEDIAN_G", top=1671)
    assert sql.startswith("SELECT TOP 1671 ") and "s.snMedian_g BETWEEN 65.0 AND 70.0" in sql
    assert "s.subClass = 'K1III (18322)'" in build_query("K1III (18322)", [1, 2])
    with pytest.raises(ValueError, match="snr_column"):
        build_query("K1", [60, 65], snr_column="SNR")
    with pytest.raises(ValueError, match="empty"):
        build_query("K1", [65, 60])
    with pytest.raises(ValueError, match="characters"):
        build_query("K1'; DROP TABLE SpecObjAll; --", [60, 65])


def test_spec_url_is_the_dr10_sas_layout():
    assert spec_url(266, 51602, 1) == ("https://data.sdss.org/sas/dr10/sdss/spectro/redux/26/"
                                       "spectra/0266/spec-0266-51602-0001.fits")


def config(tmp_path) -> dict:
    return {"source": "sdss", "snr_column": "SN_MEDIAN_ALL", "label_policy": "exact",
            "grid": {"log10_start": 3.58, "log10_step": 1e-4, "n_pixels": 3840},
            "types": {"M": {"M1": {"count": 5, "snr": [20, 60]}}},
            "sdss": {"spec_dir": None, "cache_dir": str(tmp_path / "cache"),
                     "data_release": 10, "run2d": "26", "max_retries": 2}}


def test_query_is_deduplicated_cached_and_retried(tmp_path):
    cfg = config(tmp_path)
    calls = []

    def fake_query(sql):
        calls.append(sql)
        rows = selection_rows()
        dup = rows.iloc[[0]].assign(specObjID=3, snMedian=40.0, plate=999)
        nomatch = rows.iloc[[0]].assign(specObjID=4, bestObjID=0, plate=998)
        nomatch2 = nomatch.assign(specObjID=5, plate=997)
        return pd.concat([rows, dup, nomatch, nomatch2]).drop(columns="query_subclass")

    rows = sdss_remote.query_type(cfg, "M", query_fn=fake_query)
    # One per bestObjID (the higher S/N kept); bestObjID 0 (no photometric match) never merged.
    assert rows["specObjID"].tolist() == [1, 2, 4, 5]
    assert sdss_remote.query_type(cfg, "M", query_fn=fake_query).equals(rows)
    assert len(calls) == 1  # the second call read the cached CSV

    sleeps = Sleeps()

    def offline(sql):
        raise ConnectionError("no route to host")

    cfg["types"]["M"]["M1"]["snr"] = [21, 60]  # a new query, not in the cache
    with pytest.raises(DownloadError, match="spec_dir"):
        sdss_remote.query_type(cfg, "M", query_fn=offline, sleep=sleeps)
    assert sleeps == [1.0, 2.0]  # max_retries = 2: three tries, exponential backoff


# -------------------------------------------------------------------------------- download

def test_retries_timeouts_500s_short_bodies_and_stalls(shared_data, tmp_path):
    files = served(shared_data, lite=True)
    url_a, url_b = list(files)
    server = FakeServer(files, {url_a: ["timeout", 500, "short", "stall", "ok"],
                                url_b: [503, "ok"]})
    sleeps = Sleeps()
    cache = tmp_path / "cache"
    manifest = download_spectra(selection_rows(), cache, cache / "manifest.csv",
                                session=session_for(server), sleep=sleeps, max_retries=5)
    assert manifest["status"].tolist() == ["fetched", "fetched"]
    assert manifest["attempts"].tolist() == [5, 2]
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 1.0]
    assert_clean_cache(cache, files)
    on_disk = pd.read_csv(cache / "manifest.csv")
    assert on_disk["bytes"].tolist() == [len(files[url_a]), len(files[url_b])]
    assert on_disk["url"].tolist() == [url_a, url_b]


@pytest.mark.parametrize("failure, attempts, message", [
    (500, 3, "HTTP 500"), ("timeout", 3, "ConnectTimeout"), ("short", 3, "truncated body"),
    ("stall", 3, "ConnectionError"), ("html", 3, "not a usable spec file"), (404, 1, "HTTP 404")])
def test_persistent_failure_leaves_nothing_behind(shared_data, tmp_path, failure, attempts,
                                                  message):
    files = served(shared_data, lite=True)
    url = list(files)[0]
    server = FakeServer(files, {url: [failure]})
    dest = tmp_path / "cache" / "spec.fits"
    result = fetch_file(session_for(server), url, dest, max_retries=2, sleep=Sleeps())
    assert (result.status, result.attempts) == ("failed", attempts)
    assert message in result.error
    assert list((tmp_path / "cache").iterdir()) == []  # neither the file nor a .part


def test_rerun_skips_complete_files_and_refetches_changed_ones(shared_data, tmp_path):
    files = served(shared_data, lite=True)
    cache = tmp_path / "cache"
    server = FakeServer(files)
    download_spectra(selection_rows(), cache, cache / "manifest.csv",
                     session=session_for(server), sleep=Sleeps())
    assert len(server.requests) == 2

    # Rerun: nothing is fetched again.
    server.requests.clear()
    manifest = download_spectra(selection_rows(), cache, cache / "manifest.csv",
                                session=session_for(server), sleep=Sleeps())
    assert manifest["status"].tolist() == ["cached", "cached"] and server.requests == []

    # A cached file whose size no longer matches the manifest is fetched again.
    first = Path(manifest["path"][0])
    first.write_bytes(first.read_bytes() + b"\0" * 2880)
    manifest = download_spectra(selection_rows(), cache, cache / "manifest.csv",
                                session=session_for(server), sleep=Sleeps())
    assert manifest["status"].tolist() == ["refetched", "cached"]
    assert_clean_cache(cache, files)

    # The server's file changed size (a re-reduction): found with verify_remote, re-fetched.
    url_a, url_b = list(files)
    full = served(shared_data, lite=False)
    changed = {**files, url_a: full[url_a]}
    server = FakeServer(changed)
    manifest = download_spectra(selection_rows(), cache, cache / "manifest.csv",
                                session=session_for(server), sleep=Sleeps(), verify_remote=True)
    assert manifest["status"].tolist() == ["refetched", "cached"]
    assert [m for m, _ in server.requests] == ["HEAD", "GET", "HEAD"]
    assert manifest["bytes"][0] == len(full[url_a])
    assert_clean_cache(cache, changed)

    # When the size check itself cannot reach the server, the complete cached files are kept.
    server = FakeServer(changed, {url_a: ["timeout"], url_b: [500]})
    manifest = download_spectra(selection_rows(), cache, cache / "manifest.csv",
                                session=session_for(server), sleep=Sleeps(), verify_remote=True)
    assert manifest["status"].tolist() == ["cached", "cached"]
    assert [m for m, _ in server.requests] == ["HEAD", "HEAD"]
    assert_clean_cache(cache, changed)


def test_rerun_after_a_crash(shared_data, tmp_path):
    files = served(shared_data, lite=True)
    url_a, url_b = list(files)
    cache = tmp_path / "cache"
    # The process dies while the second file streams: the exception propagates, the cache
    # keeps the first file whole and has no trace of the second.
    server = FakeServer(files, {url_b: ["crash"]})
    with pytest.raises(KeyboardInterrupt):
        download_spectra(selection_rows(), cache, cache / "manifest.csv",
                         session=session_for(server), sleep=Sleeps())
    assert_clean_cache(cache, files)
    assert len(list(cache.rglob("*.fits"))) == 1
    # A kill -9 leaves a .part behind (no cleanup runs); the rerun replaces it.
    part = cache / "spectra" / "1079" / "spec-1079-52621-0509.fits.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(files[url_b][:5000])
    server = FakeServer(files)
    manifest = download_spectra(selection_rows(), cache, cache / "manifest.csv",
                                session=session_for(server), sleep=Sleeps())
    assert manifest["status"].tolist() == ["cached", "fetched"]
    assert server.requests == [("GET", url_b)]
    assert_clean_cache(cache, files)


def test_sdss_source_end_to_end_offline(shared_data, tmp_path, monkeypatch):
    """source: sdss with no spec_dir: query, cap, download, read, select -- all faked offline."""
    cfg = config(tmp_path)
    files = served(shared_data)
    url_a, url_b = list(files)
    files["https://data.sdss.org/sas/dr10/sdss/spectro/redux/26/spectra/0999/"
          "spec-0999-51000-0001.fits"] = None  # listed by the query, 404 on the server
    server = FakeServer({k: v for k, v in files.items() if v is not None},
                        {url_b: [500, "ok"]})
    rows = pd.concat([selection_rows(), selection_rows().iloc[[0]].assign(
        specObjID=3, bestObjID=13, plate=999, mjd=51000, fiberID=1)])
    monkeypatch.setattr(sdss_remote, "astroquery_sql",
                        lambda release, timeout=300: lambda sql: rows.drop(
                            columns="query_subclass"))
    monkeypatch.setattr(sdss_remote, "_default_session", lambda: session_for(server))
    monkeypatch.setattr(sdss_remote.time, "sleep", Sleeps())
    ds, rejects = sources.build_dataset(cfg, "M")
    assert sorted(ds.id) == ["spec-0618-52049-0372", "spec-1079-52621-0509"]
    assert rejects["reason"].tolist() == [selection.DOWNLOAD_FAILED]
    assert "HTTP 404" in rejects["detail"][0]
    manifest = pd.read_csv(Path(cfg["sdss"]["cache_dir"]) / "manifest-M.csv")
    assert sorted(manifest["status"]) == ["failed", "fetched", "fetched"]
    # The cap applies before the download: with count 1 only one file is fetched.
    cfg2 = copy.deepcopy(cfg)
    cfg2["sdss"]["cache_dir"] = str(tmp_path / "cache2")
    cfg2["types"]["M"]["M1"]["count"] = 1
    server.requests.clear()
    ds, rejects = sources.build_dataset(cfg2, "M")
    assert len(ds) == 1 and len(server.requests) == 1 and rejects.empty
    assert np.isfinite(ds.flux).all()


def test_empty_query_says_what_to_change(tmp_path, monkeypatch):
    cfg = config(tmp_path)
    monkeypatch.setattr(sdss_remote, "astroquery_sql", lambda release, timeout=300:
                        lambda sql: pd.DataFrame(columns=sdss_remote.QUERY_COLUMNS))
    monkeypatch.setattr(sdss_remote, "_default_session", lambda: session_for(FakeServer({})))
    with pytest.raises(sources.NoSpectraError, match="query selected no spectra"):
        sources.write_dataset(cfg, "M", tmp_path / "M.npz", tmp_path / "M_rejects.csv")
    assert not (tmp_path / "M.npz").exists()
