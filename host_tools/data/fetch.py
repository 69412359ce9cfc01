"""``sleepedge data fetch``: download Sleep-EDF Expanded 1.0.0 from PhysioNet (or, with
``--dataset dreams-spindles``, the DREAMS Sleep Spindles excerpts from Zenodo), SHA-256 checked.

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


def _open(url: str, out: Path, timeout: float, headers: dict[str, str] | None = None,
          offline: str | None = None):
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
        if offline is not None:
            raise SleepEdgeError(f"{url}: cannot reach the server ({reason}). {offline}") from exc
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


def download(url: str, dest: Path, out: Path, timeout: float, progress: bool = True,
             offline: str | None = None) -> None:
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
    resp = _open(url, out, timeout, headers, offline)
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


# --- DREAMS Sleep Spindles (Zenodo) --------------------------------------------------------------

DREAMS_DATASET = "dreams-spindles"
#: The DREAMS databases on Zenodo (record 2650142); one RAR archive per database.
DREAMS_BASE_URL = "https://zenodo.org/records/2650142/files/"
DREAMS_ARCHIVE = "DatabaseSpindles.rar"
DREAMS_LICENCE = "DREAMS_databases_License.txt"
#: SHA-256 of the files SleepEdge uses (excerpts 1-4 with their hypnograms, and the licence),
#: computed from the unchanged copies in ../shared/data/dreams-spindles. Checksums, not data.
DREAMS_SHA256: dict[str, str] = {
    "DREAMS_databases_License.txt": "6fbe5ae448a1e7f3e82ae2e3567c28a9f885e47251c7f3d650bf489e67cc0763",
    "Hypnogram_excerpt1.txt": "87df5588970293822d14e54546819ac7a1edd35640cf28af6f529c15e1190417",
    "Hypnogram_excerpt2.txt": "cef3f997dcc00a2c74654549f73089eb6d2d18f1cbb55f071cd8bb230936ca87",
    "Hypnogram_excerpt3.txt": "b6754c0e54b4df98663cd931e578111038f71fdcbde605b2df00739fb34d6ba8",
    "Hypnogram_excerpt4.txt": "edea559666ef26f6e0c17423bed0dab9a9d01d670311c94349908e808af00995",
    "excerpt1.txt": "8e93c48c6f4bf322e79e3efaa167d30be0c2342be44f4560a0e76055dad6e969",
    "excerpt2.txt": "8d541b9754096570e14f752af1f2785acdeac4af56fa5867bca5fac6538689a5",
    "excerpt3.txt": "b0049afafaabd543e75ad24f860ab3423df412f99c96a7028674a44fc14725a1",
    "excerpt4.txt": "843f918cba427b77594b0e8bca576e40c3e1626185b1eb858adffb85c5820ac0",
}
#: RAR extractors tried in order: (program, argv template with {archive} and {dest}).
RAR_EXTRACTORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unar", ("-q", "-f", "-D", "-o", "{dest}", "{archive}")),
    ("bsdtar", ("-x", "-f", "{archive}", "-C", "{dest}")),
    ("7z", ("x", "-y", "-o{dest}", "{archive}")),
    ("unrar", ("x", "-o+", "-inul", "{archive}", "{dest}/")),
)


def extract_rar(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest`` with the first RAR tool on PATH (the standard library
    reads no RAR); one clear error when there is none or it fails."""
    import subprocess

    for prog, template in RAR_EXTRACTORS:
        exe = shutil.which(prog)
        if exe is None:
            continue
        dest.mkdir(parents=True, exist_ok=True)
        argv = [exe, *(a.format(archive=archive, dest=dest) for a in template)]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no message"]
            raise SleepEdgeError(f"{archive}: {prog} could not extract it ({why[0]}); delete it to download again")
        return
    raise SleepEdgeError(
        f"{archive}: downloaded, but no RAR extractor is installed (unar, bsdtar, 7z or unrar; e.g. "
        f"apt-get install unar); or extract it yourself and run `sleepedge data fetch --dataset "
        f"{DREAMS_DATASET} --from-dir DIR`"
    )


def _place_verified(src: Path, dest: Path, digest: str, report: dict[str, list[str]], got: str) -> None:
    """Copy ``src`` to ``dest`` (unless the same file) and sort it into ``got`` or ``bad``."""
    if src.resolve() != dest.resolve():
        shutil.copyfile(src, dest)
    if sha256_file(dest) == digest:
        report[got].append(dest.name)
    else:
        os.replace(dest, dest.with_name(dest.name + ".bad"))
        report["bad"].append(dest.name)


def fetch_dreams(
    out: Path,
    *,
    base_url: str = DREAMS_BASE_URL,
    from_dir: Path | None = None,
    dry_run: bool = False,
    timeout: float = 60.0,
    progress: bool = True,
) -> dict[str, list[str]]:
    """Fetch the DREAMS Sleep Spindles excerpts 1-4, their hypnograms and the licence into ``out``
    (flat, as distributed), each SHA-256 checked against :data:`DREAMS_SHA256`.

    Online: ``DatabaseSpindles.rar`` is downloaded into ``out`` (resumable ``.part``, as for
    Sleep-EDF) and extracted with a RAR tool; the licence is taken from the archive or, if it is
    not inside, downloaded beside it. ``from_dir``: a folder holding the extracted files (or the
    archive). Files already present and matching are skipped.

    Returns
    -------
    dict
        Same keys as :func:`fetch`, listing file names.
    """
    import tempfile

    if not base_url.endswith("/"):
        base_url += "/"
    offline_hint = (f"Offline? Download {DREAMS_ARCHIVE} from {DREAMS_BASE_URL} elsewhere, extract it, and run "
                    f"`sleepedge data fetch --dataset {DREAMS_DATASET} --from-dir DIR`")
    if from_dir is not None and not from_dir.is_dir():
        raise SleepEdgeError(f"--from-dir {from_dir}: folder not found")
    report: dict[str, list[str]] = {k: [] for k in ("verified", "downloaded", "copied", "would_fetch",
                                                    "bad", "missing")}
    todo = {}
    for name, digest in DREAMS_SHA256.items():
        dest = out / name
        if dest.is_file() and sha256_file(dest) == digest:
            report["verified"].append(name)
        else:
            todo[name] = digest
    if dry_run or not todo:
        report["would_fetch"] = sorted(todo) if dry_run else []
        return report
    out.mkdir(parents=True, exist_ok=True)
    for name in todo:
        if (out / name).is_file():  # present but wrong: keep it for inspection
            os.replace(out / name, out / f"{name}.bad")
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=out) as tmp:
        source, got = Path(tmp), "downloaded"
        if from_dir is not None:
            source, got = from_dir, "copied"
            local_archive = _find_local(from_dir, DREAMS_ARCHIVE)
            if local_archive is not None and any(_find_local(from_dir, n) is None for n in todo):
                extract_rar(local_archive, Path(tmp))
                source = Path(tmp)
        else:
            archive = out / DREAMS_ARCHIVE
            if not archive.is_file():
                try:
                    download(base_url + DREAMS_ARCHIVE, archive, out, timeout, progress, offline_hint)
                except HttpStatusError as exc:
                    raise SleepEdgeError(f"{exc}; check --base-url (the DREAMS record is {DREAMS_BASE_URL})") from exc
            extract_rar(archive, source)
            if DREAMS_LICENCE in todo and _find_local(source, DREAMS_LICENCE) is None:
                try:
                    download(base_url + DREAMS_LICENCE, source / DREAMS_LICENCE, out, timeout, progress,
                             offline_hint)
                except HttpStatusError:
                    pass  # reported as missing below
        for name, digest in todo.items():
            src = _find_local(source, name) or (_find_local(from_dir, name) if from_dir is not None else None)
            if src is None:
                report["missing"].append(name)
            else:
                _place_verified(src, out / name, digest, report, got if src.is_relative_to(source) else "copied")
    if report["bad"] or report["missing"]:
        parts = []
        if report["bad"]:
            parts.append(f"{len(report['bad'])} file(s) failed the SHA-256 check and were kept as .bad: "
                         + ", ".join(str(out / r) for r in report["bad"]))
        if report["missing"]:
            where = from_dir if from_dir is not None else base_url + DREAMS_ARCHIVE
            parts.append(f"{len(report['missing'])} file(s) not found in {where}: " + ", ".join(report["missing"]))
        raise SleepEdgeError("; ".join(parts))
    return report


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sleepedge data fetch``."""
    parser.add_argument("--dataset", choices=("sleep-edfx", DREAMS_DATASET), default="sleep-edfx",
                        help="Sleep-EDF Expanded from PhysioNet (default), or the DREAMS Sleep Spindles "
                             "excerpts 1-4 from Zenodo (CC BY-NC-ND: never commit them)")
    parser.add_argument("--out", type=Path, default=None,
                        help="destination folder (default data/sleep-edfx in PhysioNet's layout, "
                             "or data/dreams-spindles)")
    parser.add_argument("--study", choices=("sc", "st", "both"), default="sc",
                        help="sleep-cassette (sc, default), sleep-telemetry (st) or both")
    parser.add_argument("--subjects", default=None,
                        help="subject numbers, e.g. 0-4,7 (default: all)")
    parser.add_argument("--files", dest="kinds", choices=("both", "psg", "hypnogram"), default="both",
                        help="PSG signals, hypnograms, or both (default)")
    parser.add_argument("--base-url", default=None,
                        help=f"mirror (default {DEFAULT_BASE_URL}, or {DREAMS_BASE_URL} for DREAMS)")
    parser.add_argument("--sums", type=Path, default=None,
                        help=f"local {SUMS_NAME} to verify against instead of the server's")
    parser.add_argument("--from-dir", type=Path, default=None,
                        help="copy the files from this local folder instead of downloading")
    parser.add_argument("--dry-run", action="store_true", help="list what would be fetched, fetch nothing")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")


def _print_report(report: dict[str, list[str]], out: Path, dry_run: bool, *, present_note: str | None = None,
                 note: str = "") -> None:
    """Print what :func:`fetch` or :func:`fetch_dreams` did (or, for a dry run, would do).

    Parameters
    ----------
    report : dict
        The fetch report (``would_fetch``, ``verified``, ``downloaded``, ``copied`` lists).
    out : Path
        The destination folder, named in the last line.
    dry_run : bool
        List the files to fetch and count them instead of summarising a fetch.
    present_note : str, optional
        With a dry run, also list each present file, with this note in brackets.
    note : str
        Appended to the summary line of a real fetch.
    """
    if dry_run:
        for rel in report["would_fetch"]:
            print(f"would fetch {rel}")
        if present_note is not None:
            for rel in report["verified"]:
                print(f"present     {rel} ({present_note})")
        print(f"{len(report['would_fetch'])} to fetch, {len(report['verified'])} present, into {out}")
        return
    print(f"{len(report['downloaded']) + len(report['copied'])} fetched, {len(report['verified'])} "
          f"already verified, into {out}{note}")


def run(args: argparse.Namespace) -> int:
    """Fetch, then print a summary (or the list of files for ``--dry-run``)."""
    if args.dataset == DREAMS_DATASET:
        return _run_dreams(args)
    args.out = args.out or Path("data/sleep-edfx")
    args.base_url = args.base_url or DEFAULT_BASE_URL
    report = fetch(
        args.out, study=args.study, subjects=parse_subjects(args.subjects), kinds=args.kinds,
        base_url=args.base_url, sums_file=args.sums, from_dir=args.from_dir, dry_run=args.dry_run,
        timeout=args.timeout,
    )
    _print_report(report, args.out, args.dry_run, present_note="verified when fetching")
    return 0


def _run_dreams(args: argparse.Namespace) -> int:
    """``--dataset dreams-spindles``: the Sleep-EDF selection options do not apply."""
    if args.subjects is not None or args.kinds != "both" or args.sums is not None or args.study != "sc":
        raise SleepEdgeError(f"--dataset {DREAMS_DATASET}: --study/--subjects/--files/--sums are Sleep-EDF options")
    out = args.out or Path("data/dreams-spindles")
    report = fetch_dreams(out, base_url=args.base_url or DREAMS_BASE_URL, from_dir=args.from_dir,
                          dry_run=args.dry_run, timeout=args.timeout)
    _print_report(report, out, args.dry_run, note=" (DREAMS licence: CC BY-NC-ND, do not commit or redistribute)")
    if not args.dry_run:
        print(f"next: sleepedge data convert --dreams {out} --out /tmp/dreams-edf")
    return 0
