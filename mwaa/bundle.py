"""Build the Amazon MWAA upload set: ``dags/``, ``plugins.zip``, ``requirements.txt``, ``startup.sh``.

``plugins.zip`` is zipped from inside ``plugins/`` (MWAA unpacks it into its plugins folder and puts
that on ``sys.path``), without bytecode caches. Usage: ``python mwaa/bundle.py [OUT_DIR]``.
"""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


def bundle(out: Path) -> Path:
    """Write the upload set into ``out`` (emptied first) and return it."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(ROOT / "dags", out / "dags", ignore=SKIP)
    plugins = ROOT / "plugins"
    with zipfile.ZipFile(out / "plugins.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(plugins.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, path.relative_to(plugins).as_posix())
    for name in ("requirements.txt", "startup.sh"):
        shutil.copy2(ROOT / "mwaa" / name, out / name)
    return out


if __name__ == "__main__":
    target = bundle(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "mwaa")
    print(
        f"{target}: upload dags/ to s3://BUCKET/dags/, the other files to s3://BUCKET/ (new object versions)"
    )
