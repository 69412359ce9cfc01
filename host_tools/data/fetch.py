"""``sleepedge data fetch``: download Sleep-EDF Expanded 1.0.0 from PhysioNet, SHA-256 checked.

File names come from the database's own ``SHA256SUMS.txt`` (hypnogram letters vary per night),
fetched from the server or given with ``--sums``. Every file is verified against it; a download
that does not match is kept as ``<name>.bad`` and reported, and the command exits non-zero.
Interrupted downloads resume from ``<name>.part`` with an HTTP Range request. ``--from-dir``
takes the files from a local folder instead (for machines without internet).

Only the standard library is used for HTTP (urllib).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from host_tools.errors import SleepEdgeError

DEFAULT_BASE_URL = "https://physionet.org/files/sleep-edfx/1.0.0/"
SUMS_NAME = "SHA256SUMS.txt"
STUDY_FOLDERS = {"sc": "sleep-cassette", "st": "sleep-telemetry"}
_CHUNK = 1 << 16
_USER_AGENT = "sleepedge-fetch/0.1 (+urllib)"
#: ``sleep-cassette/SC4ssN?-PSG.edf`` etc.; group ``ss`` is the subject number.
_FILE_RE = re.compile(
    r"^(?P<folder>sleep-cassette|sleep-telemetry)/(?P<name>(?P<study>SC4|ST7)(?P<subject>\d{2})"
    r"(?P<night>\d)[A-Z0-9]{2}-(?P<kind>PSG|Hypnogram)\.edf)$"
)


class HttpStatusError(SleepEdgeError):
    """The server answered, but not with the file (404, 500, ...): that file is reported and the
    others are still fetched."""


@dataclass(frozen=True)
class RemoteFile:
    """One database file: its path relative to the base URL, and its SHA-256."""

    relpath: str
    sha256: str
    study: str  # "sc" or "st"
    subject: int
    kind: str  # "PSG" or "Hypnogram"


# --- inputs ----------------------------------------------------------------------------------

def parse_sums(text: str, source: str = SUMS_NAME) -> dict[str, str]:
    """Parse ``sha256sum`` output: ``<64 hex> [ *]<path>`` per line -> ``{path: hex}``.

    Raises :class:`SleepEdgeError` naming ``source`` on a malformed line or an empty list.
    """
    sums: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *]?(.+)", line)
        if not m:
            raise SleepEdgeError(f"{source}: line {n} is not '<sha256> <path>': {line[:60]!r}")
        sums[m[2].strip().lstrip("./")] = m[1].lower()
    if not sums:
        raise SleepEdgeError(f"{source}: no checksums in this file")
    return sums


def parse_subjects(spec: str | None) -> set[int] | None:
    """``"0-4,7"`` -> ``{0, 1, 2, 3, 4, 7}``; ``None`` / ``"all"`` -> ``None`` (every subject)."""
    if spec is None or spec.strip().lower() in ("", "all"):
        return None
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise SleepEdgeError(f"--subjects {spec!r}: {part!r} is not a number or a range like 0-4")
        out.update(range(int(m[1]), int(m[2] or m[1]) + 1))
    return out


def select_files(
    sums: dict[str, str], study: str, subjects: set[int] | None, kinds: str = "both"
) -> list[RemoteFile]:
    """The files of the chosen study (``sc``, ``st`` or ``both``), subjects, and kinds (``psg``,
    ``hypnogram`` or ``both``)."""
    studies = {"sc", "st"} if study == "both" else {study}
    want = {"PSG", "Hypnogram"} if kinds == "both" else {"PSG" if kinds == "psg" else "Hypnogram"}
    files = []
    for rel, digest in sums.items():
        m = _FILE_RE.match(rel)
        if not m:
            continue
        st = "sc" if m["study"] == "SC4" else "st"
        if st in studies and m["kind"] in want and (subjects is None or int(m["subject"]) in subjects):
            files.append(RemoteFile(rel, digest, st, int(m["subject"]), m["kind"]))
    return sorted(files, key=lambda f: f.relpath)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


# --- HTTP ------------------------------------------------------------------------------------

def _offline_message(url: str, reason: object, out: Path) -> str:
    return (
        f"{url}: cannot reach the server ({reason}). Offline? Download Sleep-EDF Expanded "
        f"elsewhere and run `sleepedge data fetch --from-dir DIR --sums DIR/{SUMS_NAME}`, or place "
        f"the files in {out}/sleep-cassette/ (and sleep-telemetry/) yourself"
    )


def _open(url: str, out: Path, timeout: float, headers: dict[str, str] | None = None):
    """urlopen with one clear error for network failures; HTTP errors are returned to the caller
    as the ``HTTPError`` (it is a response too) so Range handling can look at 416."""
    import urllib.error  # here, not at the top: urllib.request pulls in ssl, slowing --help
    import urllib.request

    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - URL from the user
    except urllib.error.HTTPError as exc:
        return exc
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SleepEdgeError(_offline_message(url, reason, out)) from exc


def fetch_sums(base_url: str, out: Path, timeout: float) -> str:
    """Download ``SHA256SUMS.txt`` (saved into ``out`` as well) and return its text."""
    url = base_url + SUMS_NAME
    resp = _open(url, out, timeout)
    with resp:
        if resp.status != 200:
            raise SleepEdgeError(f"{url}: HTTP {resp.status}; check --base-url or pass --sums FILE")
        text = resp.read().decode("utf-8", errors="replace")
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMS_NAME).write_text(text)
    return text


def download(url: str, dest: Path, out: Path, timeout: float, progress: bool = True) -> None:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming an existing ``.part``.

    The server may ignore the Range header (answers 200): the part is then restarted from zero.
    A 416 answer means the part already holds at least the whole file; it is kept as is and the
    caller's checksum decides.
    """
    from tqdm import tqdm

    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    resp = _open(url, out, timeout, headers)
    with resp:
        if resp.status == 416 and have:
            os.replace(part, dest)
            return
        if resp.status == 206:
            if not str(resp.headers.get("Content-Range", "")).startswith(f"bytes {have}-"):
                raise SleepEdgeError(f"{url}: server answered a different byte range than asked")
            mode = "ab"
        elif resp.status == 200:
            have, mode = 0, "wb"
        else:
            raise HttpStatusError(f"{url}: HTTP {resp.status} {getattr(resp, 'reason', '')}".rstrip())
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=dest.name, leave=False, disable=not progress, file=sys.stderr)
        try:
            with open(part, mode) as fh:
                while True:
                    try:
                        chunk = resp.read(_CHUNK)
                    except (OSError, socket.timeout) as exc:
                        raise SleepEdgeError(
                            f"{url}: connection lost after {fh.tell()} bytes ({exc}); run the same "
                            f"command again to resume from {part.name}"
                        ) from exc
                    if not chunk:
                        break
                    fh.write(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    os.replace(part, dest)


# --- the command -----------------------------------------------------------------------------

def _find_local(from_dir: Path, rel: str) -> Path | None:
    """A database file in a local copy: same relative path, or just the file name anywhere."""
    direct = from_dir / rel
    if direct.is_file():
        return direct
    name = Path(rel).name
    hits = [p for p in from_dir.rglob(name) if p.is_file()]
    return hits[0] if hits else None


def fetch(
    out: Path,
    *,
    study: str = "sc",
    subjects: set[int] | None = None,
    kinds: str = "both",
    base_url: str = DEFAULT_BASE_URL,
    sums_file: Path | None = None,
    from_dir: Path | None = None,
    dry_run: bool = False,
    timeout: float = 60.0,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Fetch and verify the selected files into ``out`` (PhysioNet's folder layout).

    Returns
    -------
    dict
        ``{"verified": [...], "downloaded": [...], "copied": [...], "would_fetch": [...],
        "bad": [...], "missing": [...]}`` of relative paths.

    Raises
    ------
    SleepEdgeError
        Offline, bad arguments, or (after every file was tried) corrupted or missing files.
    """
    from tqdm import tqdm

    if study not in ("sc", "st", "both"):
        raise SleepEdgeError(f"--study {study!r}: choose sc, st or both")
    if kinds not in ("psg", "hypnogram", "both"):
        raise SleepEdgeError(f"--files {kinds!r}: choose psg, hypnogram or both")
    if not base_url.endswith("/"):
        base_url += "/"
    if from_dir is not None and not from_dir.is_dir():
        raise SleepEdgeError(f"--from-dir {from_dir}: folder not found")

    if sums_file is not None:
        try:
            sums_text = Path(sums_file).read_text()
        except OSError as exc:
            raise SleepEdgeError(f"--sums {sums_file}: cannot read ({exc.strerror})") from exc
        source = str(sums_file)
    elif from_dir is not None:
        local = _find_local(from_dir, SUMS_NAME)
        if local is None:
            raise SleepEdgeError(f"--from-dir {from_dir}: no {SUMS_NAME} there; pass --sums FILE")
        sums_text, source = local.read_text(), str(local)
    else:
        sums_text, source = fetch_sums(base_url, out, timeout), base_url + SUMS_NAME
    sums = parse_sums(sums_text, source)
    files = select_files(sums, study, subjects, kinds)
    if not files:
        raise SleepEdgeError(
            f"{source}: no PSG/hypnogram files for --study {study}"
            + (f" and subjects {sorted(subjects)}" if subjects is not None else "")
        )

    report: dict[str, list[str]] = {k: [] for k in ("verified", "downloaded", "copied", "would_fetch",
                                                    "bad", "missing")}
    if dry_run:
        for f in files:
            key = "verified" if (out / f.relpath).is_file() else "would_fetch"
            report[key].append(f.relpath)
        return report

    failures: list[str] = []  # HTTP errors, one line each
    bar = tqdm(files, desc="files", unit="file", disable=not progress, file=sys.stderr)
    for f in bar:
        dest = out / f.relpath
        bar.set_postfix_str(Path(f.relpath).name)
        if dest.is_file():
            if sha256_file(dest) == f.sha256:
                report["verified"].append(f.relpath)
                continue
            os.replace(dest, dest.with_name(dest.name + ".bad"))  # keep it for inspection
        if from_dir is not None:
            src = _find_local(from_dir, f.relpath)
            if src is None:
                report["missing"].append(f.relpath)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            got = "copied"
        else:
            try:
                download(base_url + f.relpath, dest, out, timeout, progress)
            except HttpStatusError as exc:
                report["missing"].append(f.relpath)
                failures.append(str(exc))
                continue
            got = "downloaded"
        if sha256_file(dest) != f.sha256:
            os.replace(dest, dest.with_name(dest.name + ".bad"))
            report["bad"].append(f.relpath)
        else:
            report[got].append(f.relpath)
    if report["bad"] or report["missing"]:
        parts = []
        if report["bad"]:
            parts.append(
                f"{len(report['bad'])} file(s) failed the SHA-256 check and were kept as .bad: "
                + ", ".join(str(out / r) for r in report["bad"])
            )
        if report["missing"] and from_dir is not None:
            parts.append(f"{len(report['missing'])} file(s) not found in {from_dir}: "
                         + ", ".join(Path(r).name for r in report["missing"]))
        elif report["missing"]:
            parts.append(f"{len(failures)} file(s) not downloaded: " + ", ".join(failures))
        raise SleepEdgeError("; ".join(parts) + "; run the command again to retry")
    return report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sleepedge data fetch``."""
    parser.add_argument("--out", type=Path, default=Path("data/sleep-edfx"),
                        help="destination folder, PhysioNet layout (default data/sleep-edfx)")
    parser.add_argument("--study", choices=("sc", "st", "both"), default="sc",
                        help="sleep-cassette (sc, default), sleep-telemetry (st) or both")
    parser.add_argument("--subjects", default=None,
                        help="subject numbers, e.g. 0-4,7 (default: all)")
    parser.add_argument("--files", dest="kinds", choices=("both", "psg", "hypnogram"), default="both",
                        help="PSG signals, hypnograms, or both (default)")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"default {DEFAULT_BASE_URL}")
    parser.add_argument("--sums", type=Path, default=None,
                        help=f"local {SUMS_NAME} to verify against instead of the server's")
    parser.add_argument("--from-dir", type=Path, default=None,
                        help="copy the files from this local folder instead of downloading")
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched, fetch nothing")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")


def run(args: argparse.Namespace) -> int:
    """Fetch, then print a summary (or the list of files for ``--dry-run``)."""
    report = fetch(
        args.out, study=args.study, subjects=parse_subjects(args.subjects), kinds=args.kinds,
        base_url=args.base_url, sums_file=args.sums, from_dir=args.from_dir, dry_run=args.dry_run,
        timeout=args.timeout,
    )
    if args.dry_run:
        for rel in report["would_fetch"]:
            print(f"would fetch {rel}")
        for rel in report["verified"]:
            print(f"present     {rel} (verified when fetching)")
        print(f"{len(report['would_fetch'])} to fetch, {len(report['verified'])} present, into {args.out}")
        return 0
    print(f"{len(report['downloaded']) + len(report['copied'])} fetched, {len(report['verified'])} "
          f"already verified, into {args.out}")
    return 0
