"""Media path containment: '..', absolute paths and symlinks leading out of the media root are refused."""

from pathlib import Path

import pytest

from latentomni.data.media import MediaError
from latentomni.data.paths import MediaPathError, check_sample_media, contain
from latentomni.data.schema import parse_sample
from lo_testing import make_sample


@pytest.fixture
def layout(tmp_path):
    """root/clip.mp4 (a real file), root/link.mp4 -> outside/secret.mp4, root/inner.mp4 -> root/clip.mp4."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "clip.mp4").write_bytes(b"x")
    (outside / "secret.mp4").write_bytes(b"s")
    (outside / "x").write_bytes(b"s")
    (root / "link.mp4").symlink_to(outside / "secret.mp4")
    (root / "inner.mp4").symlink_to(root / "clip.mp4")
    return root, outside


def test_paths_inside_the_root_are_kept_as_written(layout):
    root, _ = layout
    assert contain("clip.mp4", root) == root / "clip.mp4"
    assert contain("sub/../clip.mp4", root) == root / "sub/../clip.mp4"
    assert contain("inner.mp4", root) == root / "inner.mp4"  # a symlink that stays inside
    assert contain("not_there.mp4", root) == root / "not_there.mp4"  # missing is the runner's business
    assert contain(root / "clip.mp4", root) == root / "clip.mp4"  # absolute, but inside


def test_dotdot_escape_is_refused_even_when_absolute_paths_are_allowed(layout):
    root, _ = layout
    for allow in (False, True):
        with pytest.raises(MediaPathError, match=r"\.\./\.\./outside/x: climbs out of the media root .*'\.\.'") as e:
            contain("../../outside/x", root, allow_absolute=allow)
        assert e.value.kind == "media path leaves root"


def test_absolute_path_outside_is_refused_unless_allowed(layout):
    root, outside = layout
    target = outside / "secret.mp4"
    with pytest.raises(MediaPathError, match=r"is an absolute path outside the media root.*--allow-absolute-media"):
        contain(str(target), root)
    assert contain(str(target), root, allow_absolute=True) == target


def test_symlink_leading_outside_is_refused_unless_allowed(layout):
    root, _ = layout
    with pytest.raises(MediaPathError, match=r"link\.mp4: resolves outside the media root .*a symlink to .*secret"):
        contain("link.mp4", root)
    assert contain("link.mp4", root, allow_absolute=True) == root / "link.mp4"


def test_symlink_to_etc_passwd_is_refused(layout):
    root, _ = layout
    (root / "passwd.mp4").symlink_to("/etc/passwd")
    with pytest.raises(MediaPathError, match="resolves outside the media root"):
        contain("passwd.mp4", root)


def test_a_base_below_the_root_may_climb_within_it(layout):
    root, _ = layout
    (root / "train").mkdir()
    assert contain("../clip.mp4", root, base=root / "train") == root / "train" / "../clip.mp4"
    with pytest.raises(MediaPathError, match="climbs out"):
        contain("../../outside/x", root, base=root / "train")


@pytest.mark.parametrize(
    ("video", "kind"),
    [("../../outside/x", "media path leaves root"), ("link.mp4", "media path leaves root"),
     ("ABS", "absolute media path")],
)
def test_training_sample_check_raises_a_skippable_media_error(layout, video, kind):
    root, outside = layout
    video = str(outside / "x") if video == "ABS" else video
    sample = parse_sample(make_sample(video=video))
    with pytest.raises(MediaError) as e:
        check_sample_media(sample, root)
    assert e.value.kind == kind and "sample s1: video path" in e.value.reason
    assert "allow_absolute_media" in e.value.reason or kind == "media path leaves root"
    check_sample_media(parse_sample(make_sample(video="clip.mp4")), root)  # a contained sample passes


def test_training_sample_check_with_a_media_root_above_the_jsonl_folder(layout):
    root, outside = layout
    (root / "run").mkdir()
    sample = parse_sample(make_sample(video="../clip.mp4"))
    check_sample_media(sample, root / "run", media_root=root)
    with pytest.raises(MediaError, match="climbs out"):
        check_sample_media(sample, root / "run")  # the JSONL folder alone does not hold the clip
    absolute = parse_sample(make_sample(video=str(outside / "x")))
    check_sample_media(absolute, root, allow_absolute=True)
    assert Path(outside / "x").is_file()
