"""The official prompt lists, pinned: a repository, a commit, a path and the file's sha256.

A benchmark's number means something only for a known prompt list, and the
lists do change: T2I-CompBench removed duplicates from ``color_val.txt`` in
September 2025 (commit 3310c2f), so a colour score from before and one from
after are over different prompts. The bench therefore reads each list at a
pinned commit and checks its hash, downloads it once into a cache
(``$GOTR1_CACHE`` or ``~/.cache/gotr1``), or takes it from ``--prompts-dir``
for an offline machine; a file whose hash differs is refused with both hashes
named, never used. Results record the list version they were made with.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

RAW_URL = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class PinnedFile:
    repo: str
    commit: str
    path: str
    sha256: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def url(self, base: str = RAW_URL) -> str:
        return f"{base}/{self.repo}/{self.commit}/{self.path}"


T2I_REPO, T2I_COMMIT = "Karine-Huang/T2I-CompBench", "1b7094991a57f3c22abdd4f6e8ba6c1a15517073"
T2I_COMMIT_2024 = "7728deac05e17903b3145befd9b7207c7c019573"  # the last commit before colour's duplicates went


def _t2i(name: str, sha256: str, commit: str = T2I_COMMIT) -> PinnedFile:
    return PinnedFile(T2I_REPO, commit, f"examples/dataset/{name}", sha256)


T2I_COMPBENCH: dict[str, dict[str, PinnedFile]] = {
    "2025": {
        "color": _t2i("color_val.txt", "1634259756dbc77d13093d907d414480080ec9790a8c97ad09efaea7b2534f2d"),
        "shape": _t2i("shape_val.txt", "37e1a276906c7ea9516cbd7ac8501be896006c0c17ca7344f260562834455bae"),
        "texture": _t2i("texture_val.txt", "fbb5363515b4a28009e360afaaaf389d2dd2289e50dbb0c6ef4ea0c7fe4f3d4f"),
        "spatial": _t2i("spatial_val.txt", "8707a1d7e42ce3002d95363cf55f74bd043c843ae27108f5125aaaa7840ca988"),
        "non_spatial": _t2i("non_spatial_val.txt", "04c56cc9ac441dc9ea6c5157652058bd1635b5308526dd31bb29a1caab9a758d"),
        "complex": _t2i("complex_val.txt", "1b808018b8d9916db3d47d5aa2ef18377a3549a56901a474156f799824cdf3b4"),
        # which complex prompts hold a spatial relation, which an action (the 3-in-1 score weighs by them)
        "complex_spatial": _t2i("complex_val_spatial.txt",
                                "6c7ac0ab75c7c9080cfc7b421fb059b9b0febb98471707aeedf58771088abc02"),
        "complex_action": _t2i("complex_val_action.txt",
                               "d49ee4c7f99e3f3379fb8704a54ff5288b83bb412971edf616a4721c2473308e"),
    },
}
# The 2024 lists: the same files but colour's list before its duplicates were removed (the lists the GoT-R1 paper
# could have used: it appeared in May 2025).
T2I_COMPBENCH["2024"] = {**T2I_COMPBENCH["2025"], "color": _t2i(
    "color_val.txt", "1e37a12c1861bf6b11623eaffb0bf6d6eeea9702caf45b95d040f1721bba7f4f", T2I_COMMIT_2024)}

GENEVAL_REPO, GENEVAL_COMMIT = "djghosh13/geneval", "af4902f24d3ca90ebbb446dd9891a59e0f82725f"
GENEVAL = {
    "metadata": PinnedFile(GENEVAL_REPO, GENEVAL_COMMIT, "prompts/evaluation_metadata.jsonl",
                           "5c48e0813e812e3c373fa5c8ed07a8f0a483be30272b4427b0559c8048e67c13"),
    # the detector's 80 COCO classes in its output order, as GenEval names them
    "object_names": PinnedFile(GENEVAL_REPO, GENEVAL_COMMIT, "evaluation/object_names.txt",
                               "608f6a0e5c8ca1c7a92b818430141fe268c85b7930b50f4160f1d65893b5bacd"),
}


class PromptListError(ValueError):
    """A prompt list that cannot be had or is not the pinned one."""


def sha256(path: Path) -> str:
    """A file's sha256, read in blocks (a model's weights need not fit in memory twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("GOTR1_CACHE") or Path.home() / ".cache" / "gotr1").expanduser() / "bench"


def fetch(files: dict[str, PinnedFile], prompts_dir: str | Path | None = None, cache: Path | None = None,
          base_url: str = RAW_URL) -> dict[str, Path]:
    """Each pinned file as a verified local path: from ``prompts_dir`` when given (nothing is downloaded), else
    from the cache, downloading what is missing. A wrong hash is an error naming the file and both hashes."""
    found: dict[str, Path] = {}
    for key, pinned in files.items():
        if prompts_dir is not None:
            path = Path(prompts_dir).expanduser() / pinned.name
            if not path.is_file():
                raise PromptListError(
                    f"{path}: missing; --prompts-dir needs {pinned.name} from {pinned.repo} at commit "
                    f"{pinned.commit[:7]} ({pinned.path}, sha256 {pinned.sha256})")
        else:
            path = (cache or cache_dir()) / pinned.repo.replace("/", "+") / pinned.commit / pinned.path
            if not path.is_file():
                _download(pinned, path, base_url)
        if (actual := sha256(path)) != pinned.sha256:
            raise PromptListError(
                f"{path}: sha256 {actual}, expected {pinned.sha256} ({pinned.path} of {pinned.repo} at commit "
                f"{pinned.commit[:7]}); this is another version of the list — use the pinned one, or another "
                "--version of the benchmark if it is one")
        found[key] = path
    return found


def _download(pinned: PinnedFile, path: Path, base_url: str) -> None:
    url = pinned.url(base_url)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise PromptListError(
            f"cannot download {url} ({exc}); on a machine without network, copy {pinned.name} (sha256 "
            f"{pinned.sha256}) into a folder and pass --prompts-dir") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)  # a kill mid-download leaves no half file under the real name


def read_lines(path: Path) -> list[str]:
    """A prompt list's prompts: one per line, line endings of either kind, blank lines skipped, duplicates dropped
    (keeping the first) — a duplicate would name the same image files."""
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            seen.setdefault(line.strip(), None)
    return list(seen)
