"""Archives are unpacked member by member: escapes, links, devices and bombs are refused."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest

from registry.checks.archives import extract_archive
from registry.errors import InvalidArchive, InvalidFilename, PickleNotAccepted, TooLarge, TooManyFiles

from .upload_helpers import adapter_files


def _zip(tmp_path, members: dict[str, bytes], name="a.zip", symlink: str | None = None):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member, content in members.items():
            zf.writestr(member, content)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return str(path)


def _tar(tmp_path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = (), name="a.tar.gz"):
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tf:
        for member, content in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
        for info in extra:
            tf.addfile(info)
    return str(path)


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / "unpack" / "dest"
    path.mkdir(parents=True)
    return path


@pytest.mark.parametrize("maker", [_zip, _tar], ids=["zip", "tar.gz"])
@pytest.mark.parametrize("prefix", ["", "sst-2/", "./"])
def test_unpacks_the_adapter_files(tmp_path, dest, maker, prefix):
    files = adapter_files()
    path = maker(tmp_path, {prefix + name: content for name, content in files.items()})
    extracted = extract_archive(path, "a", str(dest))
    assert sorted(extracted) == sorted(files)
    for name, content in files.items():
        assert open(extracted[name], "rb").read() == content
        assert os.path.dirname(extracted[name]) == str(dest)


@pytest.mark.parametrize("maker", [_zip, _tar], ids=["zip", "tar.gz"])
@pytest.mark.parametrize("member", ["../README.md", "sst-2/../../README.md", "/etc/README.md", "C:/README.md",
                                    "a\\README.md"])
def test_escaping_members_are_refused_and_nothing_written_outside(tmp_path, dest, maker, member):
    path = maker(tmp_path, {**adapter_files(), member: b"pwned"})
    with pytest.raises(InvalidArchive) as exc:
        extract_archive(path, "a", str(dest))
    assert exc.value.status == 400 and exc.value.code == "invalid_archive"
    assert not (dest.parent / "README.md").exists() and not (tmp_path / "README.md").exists()


def test_zip_symlink_is_refused(tmp_path, dest):
    path = _zip(tmp_path, adapter_files(), symlink="README.md")
    with pytest.raises(InvalidArchive, match="symbolic link"):
        extract_archive(path, "a", str(dest))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                                  tarfile.FIFOTYPE])
def test_tar_links_and_devices_are_refused(tmp_path, dest, kind):
    info = tarfile.TarInfo("README.md")
    info.type = kind
    info.linkname = "/etc/passwd"
    path = _tar(tmp_path, adapter_files(), extra=[info])
    with pytest.raises(InvalidArchive, match="README.md"):
        extract_archive(path, "a", str(dest))
    assert not os.path.lexists(dest / "README.md")


def test_zip_bomb_is_stopped_by_the_size_limit(tmp_path, dest, settings):
    settings.HUB_MAX_FILE_BYTES = 1024 * 1024
    path = _zip(tmp_path, {**adapter_files(), "README.md": b"\0" * (8 * 1024 * 1024)})
    assert os.path.getsize(path) < 64 * 1024
    with pytest.raises(TooLarge):
        extract_archive(path, "a", str(dest))


def test_total_unpacked_size_is_limited(tmp_path, dest, settings):
    settings.HUB_MAX_UPLOAD_BYTES = 5000
    path = _tar(tmp_path, {**adapter_files(), "README.md": b"x" * 4000})
    with pytest.raises(TooLarge):
        extract_archive(path, "a", str(dest))


def test_too_many_members(tmp_path, dest, settings):
    settings.HUB_MAX_FILES = 2
    path = _zip(tmp_path, {**adapter_files(), "README.md": b"hi"})
    with pytest.raises(TooManyFiles):
        extract_archive(path, "a", str(dest))


def test_member_names_follow_the_file_rules(tmp_path, dest):
    with pytest.raises(PickleNotAccepted):
        extract_archive(_zip(tmp_path, {"pytorch_adapter.bin": b"\x80\x04"}), "a", str(dest))
    with pytest.raises(InvalidFilename):
        extract_archive(_zip(tmp_path, {"setup.py": b"import os"}, name="b.zip"), "b", str(dest))


def test_duplicates_across_folders_are_refused(tmp_path, dest):
    path = _zip(tmp_path, {"a/README.md": b"1", "b/README.md": b"2"})
    with pytest.raises(InvalidArchive, match="twice"):
        extract_archive(path, "a", str(dest))


def test_deep_nesting_is_refused(tmp_path, dest):
    with pytest.raises(InvalidArchive, match="nested too deep"):
        extract_archive(_zip(tmp_path, {"a/b/README.md": b"1"}), "a", str(dest))


@pytest.mark.parametrize("content", [b"not an archive at all", b"PK\x03\x04garbage" * 10, b"\x1f\x8bgarbage"])
def test_damaged_or_unknown_archives(tmp_path, dest, content):
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(InvalidArchive):
        extract_archive(str(path), "x", str(dest))


def test_extractall_is_never_used(tmp_path, dest, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("extractall used")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", forbidden)
    monkeypatch.setattr(tarfile.TarFile, "extractall", forbidden)
    extract_archive(_zip(tmp_path, adapter_files()), "a", str(dest))
    extract_archive(_tar(tmp_path, adapter_files()), "a", str(tmp_path))
