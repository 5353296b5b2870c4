"""Build hook: the role definitions in roles/ travel in the wheel as package data (kato/_roles).

pyproject.toml holds everything else; setuptools cannot map a directory outside the package
into it by configuration alone, so the one copy is done here, at build time.
"""

from pathlib import Path
from shutil import copytree, ignore_patterns

from setuptools import setup
from setuptools.command.build_py import build_py

ROLES = Path(__file__).resolve().parent / "roles"


class BuildWithRoles(build_py):
    """build_py, plus roles/ copied to kato/_roles in the build tree."""

    def run(self) -> None:
        super().run()
        if not ROLES.is_dir():  # an sdist without roles/ cannot make a working kato
            raise SystemExit(f"{ROLES} is missing: build kato from a full checkout or sdist")
        target = Path(self.build_lib) / "kato" / "_roles"
        copytree(ROLES, target, dirs_exist_ok=True, ignore=ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithRoles})
