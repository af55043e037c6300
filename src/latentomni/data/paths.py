"""Media path containment: a media path named by an annotation or a training record must stay inside its root.

Benchmark annotation files and training JSONL files are often downloaded, and they name media by path. A
record holding ``../../outside/x``, an absolute path, or a symlink in the media root pointing elsewhere
would otherwise make the evaluator or the trainer decode (and, for a model that transcribes, repeat) any file
the process can read. :func:`contain` resolves the path (following symlinks) and accepts it only when it lies
inside the resolved root. Users who keep media elsewhere on purpose opt in with ``allow_absolute=True``
(``latentomni eval --allow-absolute-media``): then an absolute path is taken as given and a symlink may lead
out of the root; a relative path that climbs out of the root with ``..`` is refused even then (choose a root
that holds the file: a ``..`` that stays inside it, as in the data pipeline's paths relative to its output
file, is fine).

This module imports nothing heavy, so that loading an annotation file stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from latentomni.data.schema import TrainingSample

ALLOW_HINT = "pass --allow-absolute-media to accept media outside the media root"


class MediaPathError(ValueError):
    """A media path that leaves its root; ``kind`` is a short countable category for reports."""

    def __init__(self, path: str | Path, reason: str, kind: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.kind = str(path), reason, kind


def contain(
    path: str | Path, root: str | Path, *, base: str | Path | None = None, allow_absolute: bool = False
) -> Path:
    """``path`` as a path inside ``root``, or :class:`MediaPathError`.

    A relative ``path`` is taken relative to ``base`` (default: ``root``; the training loader passes the
    JSONL file's folder, which may sit below the media root). The check is on the fully resolved path
    (every symlink followed, ``..`` collapsed) against the resolved root, so neither ``../../outside/x``
    nor ``root/clip.mp4 -> /etc/passwd`` gets through, while ``train/../clips/x.mp4`` inside the root does.
    A path that does not exist is checked the same way (the runner reports it as missing, but only once it
    is known to lie inside the root). With ``allow_absolute`` an absolute path is taken as given and a
    symlink may lead out of the root; a relative path that climbs out with ``..`` is refused even then,
    since naming it by its absolute path (or choosing a wider root) says the same thing on purpose.

    Returns the path as written (joined to ``base``), not its resolved target, so that reports show the
    names the user knows.
    """
    raw, root = Path(path), Path(root)
    start = Path(base) if base is not None else root
    if raw.is_absolute():
        if allow_absolute:
            return raw
        return _inside(raw, root, "is an absolute path outside the media root", "absolute media path")
    joined = start / raw
    real_root = root.resolve()
    if not _normalised(start.resolve() / raw).is_relative_to(real_root):
        reason = f"climbs out of the media root {real_root} with '..'; name the file inside it"
        raise MediaPathError(joined, reason, "media path leaves root")
    if allow_absolute:
        return joined  # inside the root by name; a symlink there may lead wherever the user pointed it
    return _inside(joined, root, "resolves outside the media root", "media path leaves root")


def _inside(path: Path, root: Path, what: str, kind: str) -> Path:
    real_root = root.resolve()
    if _inside_ok(path, real_root):
        return path
    via = f" (through a symlink to {path.resolve()})" if _has_symlink(path, root) else ""
    raise MediaPathError(path, f"{what} {real_root}{via}; {ALLOW_HINT}", kind)


def _inside_ok(path: Path, real_root: Path) -> bool:
    target = path.resolve()
    return target == real_root or target.is_relative_to(real_root)


def _normalised(path: Path) -> Path:
    """``path`` with its ``..`` parts applied by name only (no symlink is followed)."""
    return Path(os.path.normpath(path))


def _has_symlink(path: Path, root: Path) -> bool:
    """Whether any component of ``path`` below ``root`` is a symlink (for the error message only)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return False
    current = root
    for part in rel.parts:
        current = current / part
        if current.is_symlink():
            return True
    return False


def check_sample_media(
    sample: TrainingSample,
    base_dir: str | Path,
    *,
    media_root: str | Path | None = None,
    allow_absolute: bool = False,
) -> None:
    """Refuse a training sample whose video or audio path leaves the media root.

    Paths are relative to ``base_dir`` (the JSONL file's folder, as ``schema.resolve_media`` reads them);
    the media root is ``media_root`` when given, else ``base_dir`` itself. The data pipeline's ``assemble``
    stage writes paths relative to its output file, which climb out of that folder when the clips live
    elsewhere ("../../videos/x.mp4"): such a dataset needs ``media_root`` set to the folder holding its
    clips. Raises :class:`latentomni.data.media.MediaError` (kind "absolute media path" or "media path
    leaves root") so that the training loader skips the sample and lists it in ``skipped.jsonl`` like any
    other sample whose media cannot serve it; ``fail_fast`` turns it into an error as usual.
    """
    from latentomni.data.media import MediaError

    root = Path(media_root) if media_root is not None else Path(base_dir)
    for part, ref in ((sample.video, "video"), (sample.audio, "audio")):
        if part is None:
            continue
        try:
            contain(getattr(part, ref), root, base=base_dir, allow_absolute=allow_absolute)
        except MediaPathError as e:
            reason = f"sample {sample.id}: {ref} path {e.reason}".replace(ALLOW_HINT, _TRAIN_HINT)
            raise MediaError(e.path, reason, kind=e.kind) from None


_TRAIN_HINT = ("set data.media_root to the folder holding the clips, or data.allow_absolute_media: true to accept "
               "absolute paths and links out of it")
