"""``sleepedge data fetch`` against a local HTTP server (with Range support) on 127.0.0.1, and the
parser on the real Sleep-EDF ``SHA256SUMS.txt``."""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from host_tools import cli
from host_tools.data import fetch
from host_tools.errors import SleepEdgeError

SC = "sleep-cassette"
ST = "sleep-telemetry"


def fake_edf(seed: int, size: int = 150_000) -> bytes:
    """An EDF-looking header followed by random bytes (several download chunks long)."""
    head = b"0       " + f"fake {seed}".encode().ljust(248)
    return head + np.random.default_rng(seed).bytes(size)


@dataclass
class FileServer:
    """What the test server serves, and what it was asked."""

    files: dict[str, bytes]
    honour_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    body_bytes: int = 0
    url: str = ""

    def file_requests(self) -> list[tuple[str, str | None]]:
        return [r for r in self.requests if r[0].endswith(".edf")]


def _handler(state: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.lstrip("/")
            rng = self.headers.get("Range")
            state.requests.append((path, rng))
            if path not in state.files:
                self.send_error(404)
                return
            body = state.files[path]
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and state.honour_range:
                start = int(m[1])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])
            state.body_bytes += len(body) - start

    return Handler


@pytest.fixture
def serve() -> Iterator:
    """``serve(files, **opts) -> FileServer`` running on a random local port."""
    servers = []

    def start(files: dict[str, bytes], **opts: object) -> FileServer:
        state = FileServer(dict(files), **opts)  # type: ignore[arg-type]
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        return state

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def make_db() -> dict[str, bytes]:
    """A miniature database: 2 SC subjects x 2 nights, 1 ST subject x 1 night, with sums."""
    files: dict[str, bytes] = {}
    seed = 0
    for subj, night, letter in [(0, 1, "C"), (0, 2, "C"), (1, 1, "H"), (1, 2, "J")]:
        for kind, code in [("PSG", "0"), ("Hypnogram", letter)]:
            seed += 1
            size = 150_000 if kind == "PSG" else 3000
            files[f"{SC}/SC40{subj}{night}E{code}-{kind}.edf"] = fake_edf(seed, size)
    files[f"{ST}/ST7011J0-PSG.edf"] = fake_edf(99)
    files[f"{ST}/ST7011JP-Hypnogram.edf"] = fake_edf(98, 3000)
    files["RECORDS"] = "\n".join(p for p in files if p.endswith("PSG.edf")).encode()
    sums = "".join(f"{hashlib.sha256(b).hexdigest()}  {p}\n" for p, b in files.items())
    files["SHA256SUMS.txt"] = sums.encode()
    return files


def fetch_cli(out: Path, url: str, *extra: str) -> int:
    return cli.main(["data", "fetch", "--out", str(out), "--base-url", url, *extra])


def test_download_selection_then_skip_verified(serve, tmp_path: Path, capsys) -> None:
    db = make_db()
    srv = serve(db)
    assert fetch_cli(tmp_path, srv.url, "--subjects", "0") == 0
    got = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.edf"))
    assert got == sorted(p for p in db if p.startswith(f"{SC}/SC400"))
    for rel in got:
        assert (tmp_path / rel).read_bytes() == db[rel]
    assert not list(tmp_path.rglob("*.part"))
    assert "4 fetched" in capsys.readouterr().out

    srv.requests.clear()
    assert fetch_cli(tmp_path, srv.url, "--subjects", "0") == 0
    assert srv.file_requests() == []  # verified on disk, nothing downloaded again
    assert "0 fetched, 4 already verified" in capsys.readouterr().out


def test_study_and_file_kind_selection(serve, tmp_path: Path) -> None:
    srv = serve(make_db())
    assert fetch_cli(tmp_path, srv.url, "--study", "both", "--subjects", "1", "--files", "hypnogram") == 0
    got = sorted(p.name for p in tmp_path.rglob("*.edf"))
    assert got == ["SC4011EH-Hypnogram.edf", "SC4012EJ-Hypnogram.edf", "ST7011JP-Hypnogram.edf"]


def test_resume_partial_download_with_range(serve, tmp_path: Path) -> None:
    db = make_db()
    srv = serve(db)
    rel = f"{SC}/SC4001E0-PSG.edf"
    part = tmp_path / (rel + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(db[rel][:40_000])
    assert fetch_cli(tmp_path, srv.url, "--subjects", "0", "--files", "psg") == 0
    assert (tmp_path / rel).read_bytes() == db[rel]
    assert (rel, "bytes=40000-") in srv.requests
    psg_bytes = sum(len(db[p]) for p in db if p.startswith(f"{SC}/SC400") and p.endswith("PSG.edf"))
    assert srv.body_bytes == len(db["SHA256SUMS.txt"]) + psg_bytes - 40_000  # only the rest was sent


def test_resume_when_server_ignores_range(serve, tmp_path: Path) -> None:
    db = make_db()
    srv = serve(db, honour_range=False)
    rel = f"{SC}/SC4001E0-PSG.edf"
    part = tmp_path / (rel + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes from another version")
    assert fetch_cli(tmp_path, srv.url, "--subjects", "0", "--files", "psg") == 0
    assert (tmp_path / rel).read_bytes() == db[rel]  # restarted from zero on a 200


def test_complete_part_file_is_verified_not_refetched(serve, tmp_path: Path) -> None:
    db = make_db()
    srv = serve(db)
    rel = f"{SC}/SC4001EC-Hypnogram.edf"
    part = tmp_path / (rel + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(db[rel])
    assert fetch.fetch(tmp_path, subjects={0}, kinds="hypnogram", base_url=srv.url, progress=False)[
        "downloaded"] == [rel, f"{SC}/SC4002EC-Hypnogram.edf"]
    assert (tmp_path / rel).read_bytes() == db[rel]


def test_corrupted_download_is_rejected(serve, tmp_path: Path, capsys) -> None:
    db = make_db()
    bad_rel = f"{SC}/SC4002E0-PSG.edf"
    served = dict(db)
    served[bad_rel] = db[bad_rel][:-10] + b"0123456789"  # sums still describe the good file
    srv = serve(served)
    rc = fetch_cli(tmp_path, srv.url, "--subjects", "0")
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 2
    assert "SHA-256" in err and str(tmp_path / bad_rel) in err
    assert not (tmp_path / bad_rel).exists()
    assert (tmp_path / (bad_rel + ".bad")).read_bytes() == served[bad_rel]
    # the good files of the same run were still fetched and kept
    assert (tmp_path / f"{SC}/SC4001E0-PSG.edf").read_bytes() == db[f"{SC}/SC4001E0-PSG.edf"]


def test_corrupted_partial_file_is_caught_after_resume(serve, tmp_path: Path, capsys) -> None:
    db = make_db()
    srv = serve(db)
    rel = f"{SC}/SC4001E0-PSG.edf"
    part = tmp_path / (rel + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)  # wrong prefix: the resumed file cannot verify
    assert fetch_cli(tmp_path, srv.url, "--subjects", "0", "--files", "psg") == 2
    assert rel.split("/")[-1] in capsys.readouterr().err
    assert (tmp_path / (rel + ".bad")).exists() and not (tmp_path / rel).exists()
    # a second run starts over and succeeds
    assert fetch_cli(tmp_path, srv.url, "--subjects", "0", "--files", "psg") == 0
    assert (tmp_path / rel).read_bytes() == db[rel]


def test_existing_corrupt_file_is_replaced(serve, tmp_path: Path) -> None:
    db = make_db()
    srv = serve(db)
    rel = f"{SC}/SC4001EC-Hypnogram.edf"
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_bytes(b"damaged")
    assert fetch_cli(tmp_path, srv.url, "--subjects", "0", "--files", "hypnogram") == 0
    assert (tmp_path / rel).read_bytes() == db[rel]
    assert (tmp_path / (rel + ".bad")).read_bytes() == b"damaged"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_gives_one_clear_message(tmp_path: Path, capsys) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/"
    assert fetch_cli(tmp_path, url, "--subjects", "0") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert url in err and "cannot reach" in err and "--from-dir" in err


def test_offline_during_files_with_local_sums(tmp_path: Path, capsys) -> None:
    sums = tmp_path / "sums.txt"
    sums.write_bytes(make_db()["SHA256SUMS.txt"])
    url = f"http://127.0.0.1:{_closed_port()}/"
    assert fetch_cli(tmp_path / "out", url, "--sums", str(sums), "--subjects", "0") == 2
    assert "cannot reach" in capsys.readouterr().err


def test_missing_file_on_server(serve, tmp_path: Path, capsys) -> None:
    db = make_db()
    served = {k: v for k, v in db.items() if not k.endswith("SC4001E0-PSG.edf")}
    srv = serve(served)
    assert fetch_cli(tmp_path, srv.url, "--subjects", "0") == 2
    err = capsys.readouterr().err
    assert "HTTP 404" in err and f"{srv.url}{SC}/SC4001E0-PSG.edf" in err
    # the other files of the selection were still fetched
    assert (tmp_path / SC / "SC4002E0-PSG.edf").read_bytes() == db[f"{SC}/SC4002E0-PSG.edf"]


def test_dry_run_fetches_nothing(serve, tmp_path: Path, capsys) -> None:
    srv = serve(make_db())
    assert fetch_cli(tmp_path, srv.url, "--subjects", "0-1", "--dry-run") == 0
    out = capsys.readouterr().out
    assert out.count("would fetch") == 8 and "SC4012EJ-Hypnogram.edf" in out
    assert srv.file_requests() == [] and not list(tmp_path.rglob("*.edf"))


def test_sums_file_and_from_dir(serve, tmp_path: Path, capsys) -> None:
    db = make_db()
    src = tmp_path / "elsewhere"
    for rel, body in db.items():
        if "SC400" in rel or rel == "SHA256SUMS.txt":
            (src / Path(rel).name).parent.mkdir(parents=True, exist_ok=True)
            (src / Path(rel).name).write_bytes(body)  # flat copy, no sub-folders
    out = tmp_path / "out"
    assert cli.main(["data", "fetch", "--out", str(out), "--from-dir", str(src), "--subjects", "0"]) == 0
    assert (out / SC / "SC4002EC-Hypnogram.edf").read_bytes() == db[f"{SC}/SC4002EC-Hypnogram.edf"]
    # subject 1 is not in the local copy: reported, non-zero
    assert cli.main(["data", "fetch", "--out", str(out), "--from-dir", str(src), "--subjects", "0-1"]) == 2
    assert "not found in" in capsys.readouterr().err
    # --sums with a server that has no SHA256SUMS.txt
    sums = tmp_path / "sums.txt"
    sums.write_bytes(db["SHA256SUMS.txt"])
    srv = serve({k: v for k, v in db.items() if k != "SHA256SUMS.txt"})
    assert fetch_cli(tmp_path / "out2", srv.url, "--sums", str(sums), "--study", "st") == 0
    assert (tmp_path / "out2" / ST / "ST7011J0-PSG.edf").read_bytes() == db[f"{ST}/ST7011J0-PSG.edf"]


@pytest.mark.parametrize("args, words", [
    (["--subjects", "4-2"], "--subjects"),
    (["--subjects", "x"], "--subjects"),
    (["--subjects", "50"], "no PSG/hypnogram files"),
])
def test_bad_arguments(serve, tmp_path: Path, capsys, args: list[str], words: str) -> None:
    srv = serve(make_db())
    assert fetch_cli(tmp_path, srv.url, *args) == 2
    assert words in capsys.readouterr().err


def test_parse_sums_rejects_garbage(tmp_path: Path, capsys) -> None:
    with pytest.raises(SleepEdgeError, match="line 2"):
        fetch.parse_sums("a" * 64 + "  x.edf\nnot a checksum line\n", "s.txt")
    with pytest.raises(SleepEdgeError, match="no checksums"):
        fetch.parse_sums("\n\n", "s.txt")
    bad = tmp_path / "s.txt"
    bad.write_text("hello\n")
    assert cli.main(["data", "fetch", "--out", str(tmp_path), "--sums", str(bad), "--dry-run"]) == 2
    assert str(bad) in capsys.readouterr().err


# --- the real database list ------------------------------------------------------------------

def test_real_sums_list_every_night(shared_edfx: Path) -> None:
    sums = fetch.parse_sums((shared_edfx / "SHA256SUMS.txt").read_text())
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in sums.values())
    records = set((shared_edfx / "RECORDS").read_text().split())
    for study, folder in [("sc", SC), ("st", ST)]:
        files = fetch.select_files(sums, study, None)
        psgs = {f.relpath for f in files if f.kind == "PSG"}
        hyps = [f for f in files if f.kind == "Hypnogram"]
        assert psgs == {r for r in records if r.startswith(folder)}
        # each PSG has exactly one hypnogram sharing its first 7 characters
        keys = sorted(Path(h.relpath).name[:7] for h in hyps)
        assert keys == sorted(Path(p).name[:7] for p in psgs)
    assert len(fetch.select_files(sums, "both", {0, 1}, "psg")) == 4 + 2  # SC400/SC401 x2, ST701 x2


def test_real_hypnograms_verify(shared_edfx: Path) -> None:
    sums = fetch.parse_sums((shared_edfx / "SHA256SUMS.txt").read_text())
    files = sorted((shared_edfx / SC).glob("*-Hypnogram.edf"))
    assert len(files) == 54
    for f in files:
        assert fetch.sha256_file(f) == sums[f"{SC}/{f.name}"], f.name


def test_real_hypnograms_download_and_verify(serve, tmp_path: Path, shared_edfx: Path) -> None:
    """Real hypnograms served over HTTP download and verify against the real sums; the one the
    shared folder lacks (SC4272) is reported as not downloaded."""
    served = {"SHA256SUMS.txt": (shared_edfx / "SHA256SUMS.txt").read_bytes()}
    for f in sorted((shared_edfx / SC).glob("*-Hypnogram.edf")):
        served[f"{SC}/{f.name}"] = f.read_bytes()
    srv = serve(served)
    report = fetch.fetch(tmp_path, subjects=set(range(27)), kinds="hypnogram", base_url=srv.url,
                         progress=False)
    expected = sorted(k for k in served if "SC427" not in k and k.endswith(".edf"))
    assert sorted(report["downloaded"]) == expected
    for rel in report["downloaded"]:
        assert (tmp_path / rel).read_bytes() == served[rel]
    with pytest.raises(SleepEdgeError, match="SC4272FM-Hypnogram.edf: HTTP 404"):
        fetch.fetch(tmp_path, subjects={27}, kinds="hypnogram", base_url=srv.url, progress=False)
    assert (tmp_path / SC / "SC4271FC-Hypnogram.edf").is_file()


# --- DREAMS Sleep Spindles (--dataset dreams-spindles) ---------------------------------------------
# The archive served here is built in tmp from the real files in ../shared/data/dreams-spindles
# (read in place, never committed); a stand-in `bsdtar` on PATH unpacks it (Zenodo's file is a RAR,
# which the standard library cannot write, so the test archive is a zip under the RAR's name).

DREAMS_SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dreams-spindles"


def _dreams_archive(tmp: Path, *, licence_inside: bool = False, corrupt: str | None = None) -> bytes:
    import zipfile

    path = tmp / "archive.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name in fetch.DREAMS_SHA256:
            if name == fetch.DREAMS_LICENCE and not licence_inside:
                continue
            data = (DREAMS_SHARED / name).read_bytes()
            if name == corrupt:
                data = data[:-20] + b"0" * 20
            z.writestr(f"DatabaseSpindles/{name}", data)
        z.writestr("DatabaseSpindles/excerpt5.txt", b"[CZ-A1]\n1.0\n")  # not in the list: left alone
    return path.read_bytes()


@pytest.fixture
def fake_bsdtar(tmp_path: Path, monkeypatch) -> Path:
    """A `bsdtar -x -f ARCHIVE -C DEST` on PATH that unpacks zip files (the only tool on PATH)."""
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "bsdtar"
    tool.write_text(f"#!{sys.executable}\nimport sys, zipfile\na = sys.argv\n"
                    "zipfile.ZipFile(a[a.index('-f') + 1]).extractall(a[a.index('-C') + 1])\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return tool


def dreams_cli(out: Path, *extra: str) -> int:
    return cli.main(["data", "fetch", "--dataset", "dreams-spindles", "--out", str(out), *extra])


def test_dreams_checksums_are_those_of_the_shared_copies() -> None:
    assert sorted(p.name for p in DREAMS_SHARED.iterdir() if p.name != "README.md") == sorted(fetch.DREAMS_SHA256)
    for name, digest in fetch.DREAMS_SHA256.items():
        assert fetch.sha256_file(DREAMS_SHARED / name) == digest, name


def test_dreams_download_resume_extract_verify_then_skip(serve, tmp_path: Path, fake_bsdtar, capsys) -> None:
    archive = _dreams_archive(tmp_path)
    srv = serve({fetch.DREAMS_ARCHIVE: archive, fetch.DREAMS_LICENCE: (DREAMS_SHARED / fetch.DREAMS_LICENCE).read_bytes()})
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{fetch.DREAMS_ARCHIVE}.part").write_bytes(archive[:1_000_000])  # an interrupted download
    assert dreams_cli(out, "--base-url", srv.url) == 0
    assert "9 fetched, 0 already verified" in capsys.readouterr().out
    assert srv.requests[0] == (fetch.DREAMS_ARCHIVE, "bytes=1000000-")  # resumed, not restarted
    assert (fetch.DREAMS_LICENCE, None) in srv.requests  # not in the archive: fetched beside it
    for name in fetch.DREAMS_SHA256:
        assert (out / name).read_bytes() == (DREAMS_SHARED / name).read_bytes()
    assert not (out / "excerpt5.txt").exists()
    n = len(srv.requests)
    assert dreams_cli(out, "--base-url", srv.url) == 0
    assert "0 fetched, 9 already verified" in capsys.readouterr().out and len(srv.requests) == n


def test_dreams_corrupted_member_is_kept_as_bad(serve, tmp_path: Path, fake_bsdtar, capsys) -> None:
    srv = serve({fetch.DREAMS_ARCHIVE: _dreams_archive(tmp_path, licence_inside=True, corrupt="excerpt3.txt")})
    out = tmp_path / "out"
    assert dreams_cli(out, "--base-url", srv.url) == 2
    err = capsys.readouterr().err
    assert "failed the SHA-256 check" in err and str(out / "excerpt3.txt") in err
    assert (out / "excerpt3.txt.bad").is_file() and not (out / "excerpt3.txt").exists()
    assert (out / "excerpt2.txt").is_file() and [r[0] for r in srv.requests] == [fetch.DREAMS_ARCHIVE]


def test_dreams_without_a_rar_tool_says_what_to_do(serve, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no extractor anywhere
    srv = serve({fetch.DREAMS_ARCHIVE: b"Rar!\x1a\x07\x00" + b"x" * 1000})
    assert dreams_cli(tmp_path / "out", "--base-url", srv.url) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the download's progress bar
    assert err.startswith("sleepedge: error:") and "no RAR extractor" in err and "--from-dir" in err
    assert str(tmp_path / "out" / fetch.DREAMS_ARCHIVE) in err


def test_dreams_from_dir_and_offline(tmp_path: Path, capsys) -> None:
    assert dreams_cli(tmp_path / "out", "--from-dir", str(DREAMS_SHARED)) == 0
    assert "9 fetched" in capsys.readouterr().out
    assert dreams_cli(tmp_path / "out2", "--base-url", f"http://127.0.0.1:{_closed_port()}/") == 2
    err = capsys.readouterr().err
    assert "cannot reach the server" in err and "--from-dir" in err and "Sleep-EDF" not in err
