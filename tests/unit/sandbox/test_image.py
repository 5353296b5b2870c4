"""The image recipe key and finding apt's mirror."""

from __future__ import annotations

from pathlib import Path

from kato.sandbox import image

DEB822 = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_recipe_key_is_stable_and_tracks_the_package_list(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    first = image.recipe_key()
    assert image.recipe_key() == first
    monkeypatch.setattr(image, "PACKAGES", image.PACKAGES + ("htop",))
    assert image.recipe_key() != first


def test_mirror_from_a_deb822_sources_file(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(DEB822)
    assert image.apt_mirror(iter([sources])) == "http://mirror.example/debian"


def test_mirror_from_a_one_line_list(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text("# comment\ndeb [arch=amd64] http://m.example/debian bookworm main\n")
    assert image.apt_mirror(iter([listing])) == "http://m.example/debian"


def test_no_mirror_for_another_suite(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text("deb http://m.example/debian trixie main\n")
    assert image.apt_mirror(iter([listing, tmp_path / "missing.sources"])) is None
