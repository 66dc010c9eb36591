"""plan/apply.sh --execute against stand-in ssh and scp programs on PATH: hosts are done
one at a time in order, files are staged before the patch runs, and the first failing
host stops the rollout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.sites import ROOT, compiled, write_tree

SSH = r"""#!/bin/sh
# stand-in ssh: ssh -p PORT -- TARGET COMMAND
[ "$1" = -p ] && port=$2 && shift 2
[ "$1" = -- ] && shift
target=$1; shift
printf 'ssh %s %s %s\n' "$port" "$target" "$*" >>"$FAKE_LOG"
case "$*" in
  mktemp*) dir=$(mktemp -d /tmp/auditc.XXXXXX) && printf 'made %s\n' "$dir" >>"$FAKE_LOG" && echo "$dir" ;;
  *apiserver-config.patch.sh*)
    stage=$(printf '%s' "$*" | sed "s/.*sh '\(.*\)\/apiserver-config.patch.sh'.*/\1/")
    ls "$stage" | sort | tr '\n' ' ' >>"$FAKE_LOG"; echo >>"$FAKE_LOG"
    [ "$target" != "$FAIL_TARGET" ] ;;
  rm*) rm -rf "$(printf '%s' "$*" | sed "s/rm -rf '\(.*\)'/\1/")" ;;
esac
"""

SCP = r"""#!/bin/sh
# stand-in scp: scp -q -P PORT -- FILES... TARGET:DIR/
printf 'scp %s\n' "$*" >>"$FAKE_LOG"
for last; do :; done
dir=${last#*:}
shift 4
while [ "$#" -gt 1 ]; do cp "$1" "$dir"; shift; done
"""


def _setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    site = compiled(ROOT / "specs" / "prod-east.yaml")
    out = write_tree(site, tmp_path / "out")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("ssh", SSH), ("scp", SCP)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "log"),
    }
    return out, env


def _log(tmp_path: Path) -> list[str]:
    return (tmp_path / "log").read_text().splitlines()


def test_execute_rolls_out_host_by_host(tmp_path: Path) -> None:
    out, env = _setup(tmp_path)
    result = subprocess.run(
        ["bash", str(out / "plan/apply.sh"), "--execute"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    log = _log(tmp_path)
    hosts = [line.split()[2] for line in log if line.startswith("ssh")]
    assert hosts == ["root@10.0.1.171"] * 3 + ["root@10.0.1.172"] * 3 + ["ops@10.0.1.173"] * 3
    staged = [line for line in log if line.startswith("apiserver-config.patch.sh")]
    assert staged == ["apiserver-config.patch.sh audit-policy.yaml audit-webhook.kubeconfig "] * 3
    patch_lines = [line for line in log if "apiserver-config.patch.sh'" in line]
    assert "sudo -n sh" in patch_lines[2] and "sudo" not in patch_lines[0]
    made = [line.split()[1] for line in log if line.startswith("made ")]
    assert len(made) == 3
    assert not any(Path(d).exists() for d in made), "temp dirs are removed"


def test_first_failing_host_stops_the_rollout(tmp_path: Path) -> None:
    out, env = _setup(tmp_path)
    env["FAIL_TARGET"] = "root@10.0.1.172"
    result = subprocess.run(
        ["bash", str(out / "plan/apply.sh"), "--execute"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "root@10.0.1.172 failed; rollout stopped" in result.stderr
    log = _log(tmp_path)
    assert not any("10.0.1.173" in line for line in log)
    for line in log:
        if line.startswith("made "):
            shutil.rmtree(line.split()[1], ignore_errors=True)
