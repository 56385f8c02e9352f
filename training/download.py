"""Fetch the official EMNIST gzip archive and extract the letters files: ``python -m training.download DEST``.

Integrity: the archive's MD5 is checked against the value torchvision pins for this URL
(58c8d27c78d21e728a6bc7b3cc06412e). Its SHA-256 is checked when one is pinned (``--sha256``,
``$AMC_EMNIST_SHA256`` or ``EMNIST_SHA256`` below); we could not obtain the file on the build machine (no
network), so no SHA-256 is pinned yet: the first successful download prints it so it can be pinned.
Without network the command fails cleanly with a message saying what to do instead.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional

EMNIST_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
EMNIST_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"
EMNIST_SHA256: Optional[str] = None
LETTERS = ("emnist-letters-train-images-idx3-ubyte.gz", "emnist-letters-train-labels-idx1-ubyte.gz",
           "emnist-letters-test-images-idx3-ubyte.gz", "emnist-letters-test-labels-idx1-ubyte.gz",
           "emnist-letters-mapping.txt")


class DownloadError(RuntimeError):
    pass


def _digests(path: Path) -> tuple[str, str]:
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def download_emnist(dest, url: str = EMNIST_URL, sha256: Optional[str] = None, timeout: float = 30.0,
                    keep_zip: bool = False) -> Path:
    """Download ``gzip.zip`` into ``dest``, verify it, extract the EMNIST letters files; returns ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if all((dest / f).exists() for f in LETTERS[:4]):
        return dest
    sha256 = sha256 or os.environ.get("AMC_EMNIST_SHA256") or EMNIST_SHA256
    zpath = dest / "gzip.zip"
    part = dest / "gzip.zip.part"
    if not zpath.exists():
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, open(part, "wb") as f:
                shutil.copyfileobj(r, f, 1 << 20)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"could not download {url}: {getattr(exc, 'reason', exc)}. No network? Fetch gzip.zip (~560 MB) "
                f"elsewhere and put it at {zpath} (then rerun), or place the emnist-letters-*-idx?-ubyte.gz files "
                f"in a directory and set AMC_DATA_DIR or data.path to it. The embedded 'synthetic-letters' data "
                f"needs no download.") from None
        os.replace(part, zpath)
    md5, sha = _digests(zpath)
    if md5 != EMNIST_MD5:
        raise DownloadError(f"{zpath}: MD5 {md5} does not match the published {EMNIST_MD5}: corrupt or "
                            f"incomplete download; delete it and retry")
    if sha256 and sha != sha256.lower():
        raise DownloadError(f"{zpath}: SHA-256 {sha} does not match the pinned {sha256}")
    if not sha256:
        print(f"{zpath}: SHA-256 {sha} (MD5 verified; pin this SHA-256 in training/download.py)", file=sys.stderr)
    try:
        with zipfile.ZipFile(zpath) as z:
            for member in z.namelist():
                name = Path(member).name
                if name in LETTERS:
                    with z.open(member) as src, open(dest / name, "wb") as out:
                        shutil.copyfileobj(src, out)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{zpath}: not a valid zip archive ({exc})") from None
    missing = [f for f in LETTERS[:4] if not (dest / f).exists()]
    if missing:
        raise DownloadError(f"{zpath}: archive lacks {', '.join(missing)}")
    if not keep_zip:
        zpath.unlink()
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.download", description=__doc__.splitlines()[0])
    ap.add_argument("dest", nargs="?", default="data/emnist", help="target directory (default data/emnist)")
    ap.add_argument("--url", default=EMNIST_URL)
    ap.add_argument("--sha256", default=None, help="expected SHA-256 of gzip.zip")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args(argv)
    try:
        out = download_emnist(args.dest, args.url, args.sha256, args.timeout)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"EMNIST letters in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
