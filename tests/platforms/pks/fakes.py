"""The stand-in `pks`, `bosh` and `monit` of the PKS tests, and the masters they serve.

They follow the documented CLI contracts (shared research pks-bosh.md §4-§5: `pks login
-a -u -p [-k]`, `pks cluster NAME --json` with `uuid`, deployment
`service-instance_<uuid>`, `bosh -d DEP vms --json` tables with string cells, `bosh -d
DEP scp -r SRC INSTANCE:DST`, `bosh -d DEP ssh INSTANCE -c CMD [-r --json]`). ``BOSH``
treats a local directory per master as that VM's `/` (for plan/apply.sh); ``BOSH_ROOTED``
runs what it is given as it is, for `auditc apply --node-root`, where every path auditc
sends already points into the master's directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.paths import DATA

UUID = "6c1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"
MASTERS = [
    "master/0f1e2d3c-aaaa-4bbb-8ccc-000000000001",
    "master/0f1e2d3c-aaaa-4bbb-8ccc-000000000002",
    "master/0f1e2d3c-aaaa-4bbb-8ccc-000000000003",
]
BPM = Path("var/vcap/jobs/kube-apiserver/config/bpm.yml")
HEALTH = Path("var/vcap/jobs/kube-apiserver/bin/ensure_apiserver_healthy")
PASSWORD = "s3cr3t-Pa55w0rd"

PKS = r"""#!/bin/sh
# stand-in pks: login -a API -u USER -p PASSWORD [-k] | get-credentials NAME | cluster NAME --json
case "$1" in
  login)
    [ "$2" = -a ] && [ "$4" = -u ] && [ "$6" = -p ] || { echo "usage: pks login -a -u -p" >&2; exit 64; }
    printf 'pks login -a %s -u %s -p <hidden> %s\n' "$3" "$5" "${8:-}" >>"$FAKE_LOG"
    [ "$7" = "$FAKE_PASSWORD" ] || { echo "bad credentials" >&2; exit 1; } ;;
  get-credentials)
    # the password comes from PKS_USER_PASSWORD (it would prompt otherwise)
    [ "$PKS_USER_PASSWORD" = "$FAKE_PASSWORD" ] || { echo "password:" >&2; exit 1; }
    printf 'pks get-credentials %s\n' "$2" >>"$FAKE_LOG" ;;
  cluster)
    [ "$3" = --json ] || exit 64
    printf 'pks cluster %s --json\n' "$2" >>"$FAKE_LOG"
    printf '{\n  "name": "%s",\n  "plan_name": "small",\n' "$2"
    printf '  "uuid": "%s",\n  "kubernetes_master_ips": ["10.0.1.2"],\n' "$FAKE_UUID"
    printf '  "network_profile": {"uuid": "ffffffff-0000-4000-8000-000000000000"}\n}\n' ;;
  *) exit 64 ;;
esac
"""

BOSH = r"""#!/bin/sh
# stand-in bosh: -d DEP vms --json | -d DEP scp -r SRC INST:DST | -d DEP ssh INST -c CMD
#                | update-config --type=runtime --name=NAME FILE -v deployment=DEP
if [ "$1" = -n ] && [ "$2" = update-config ]; then
  [ "$3" = --type=runtime ] && [ -f "$5" ] && [ "$6" = -v ] && [ "$8" = -v ] || exit 64
  printf 'bosh update-config %s %s %s %s\n' "$4" "$(basename "$5")" "$7" "$9" >>"$FAKE_LOG"
  exit 0
fi
[ "$1" = -d ] || { echo "bosh: -d DEPLOYMENT first" >&2; exit 64; }
dep=$2; shift 2
[ "$dep" = "service-instance_$FAKE_UUID" ] || { echo "deployment not found: $dep" >&2; exit 1; }
vm() { printf '%s/vms/%s' "$FAKE" "$(printf '%s' "$1" | tr / _)"; }
case "$1" in
  vms)
    [ "$2" = --json ] || exit 64
    printf 'bosh vms\n' >>"$FAKE_LOG"
    printf '{"Tables":[{"Content":"vms",'
    printf '"Header":{"instance":"Instance","process_state":"Process State","ips":"IPs"},"Rows":['
    sep=''
    for dir in "$FAKE"/vms/*; do
      name=$(basename "$dir" | sed 's#_#/#')
      printf '%s{"active":"true","az":"az1","instance":"%s","ips":"10.0.1.2",' "$sep" "$name"
      printf '"process_state":"running","vm_cid":"vm-1","vm_type":"medium"}'
      sep=','
    done
    printf '],"Notes":[]}],"Blocks":null,"Lines":["Using deployment %s","Succeeded"]}\n' "$dep" ;;
  scp)
    [ "$2" = -r ] || exit 64
    src=$3; inst=${4%%:*}; dst=${4#*:}
    root=$(vm "$inst")
    [ -d "$root" ] || { echo "no instance $inst" >&2; exit 1; }
    [ -e "$root$dst" ] && { echo "exists: $dst" >&2; exit 1; }
    printf 'bosh scp %s %s\n' "$inst" "$(ls "$src" | tr '\n' ' ')" >>"$FAKE_LOG"
    cp -r "$src" "$root$dst" ;;
  ssh)
    inst=$2; [ "$3" = -c ] || exit 64
    root=$(vm "$inst")
    if [ "${5:-}" = -r ] && [ "${6:-}" = --json ]; then
      # results mode: run on the VM (paths under its dir), stdout as a JSON table cell
      cmd=$(printf '%s' "$4" | sed "s#'/#'$root/#g; s#sudo ##g")
      out=$(sh -c "$cmd" | awk '{ printf "%s\\n", $0 }')  # newlines as JSON escapes
      printf '{"Tables":[{"Content":"","Header":{"instance":"Instance","stdout":"Stdout"},'
      printf '"Rows":[{"instance":"%s","stdout":"%s","stderr":"","exit_code":"0"}]}]}\n' "$inst" "$out"
      exit 0
    fi
    printf 'bosh ssh %s %s\n' "$inst" "$4" >>"$FAKE_LOG"
    # the VM: every absolute path of the command is taken under this master's directory
    cmd=$(printf '%s' "$4" | sed "s#^sudo ##; s#'/tmp/#'$root/tmp/#g")
    case "$cmd" in
      *apiserver-config.patch.sh*) cmd="$cmd --root '$root'" ;;
    esac
    sh -c "$cmd" ;;
  *) exit 64 ;;
esac
"""

MONIT = r"""#!/bin/sh
printf 'monit %s\n' "$*" >>"$FAKE_LOG"
"""

HEALTHY = "#!/bin/sh\nexit 0\n"


def tkgi_master(root: Path, health: str = HEALTHY) -> None:
    """A master's `/` as the stand-ins see it: a real TKGI bpm.yml and the job's health
    check (``health``, a script: exit 0 is healthy)."""
    (root / BPM).parent.mkdir(parents=True)
    shutil.copy(DATA / "bpm/tkgi-master.yml", root / BPM)
    (root / HEALTH).parent.mkdir(parents=True)
    (root / HEALTH).write_text(health)
    (root / HEALTH).chmod(0o755)


BOSH_ROOTED = r"""
import json, os, shutil, subprocess, sys

args = sys.argv[1:]
log = open(os.environ["FAKE_LOG"], "a")
vms = os.path.join(os.environ["FAKE"], "vms")
if args[:2] == ["-n", "update-config"]:
    log.write("bosh update-config " + " ".join(args[2:]) + "\n")
    sys.exit(0 if args[2] == "--type=runtime" and os.path.isfile(args[4]) else 64)
if args[0] != "-d" or args[1] != "service-instance_" + os.environ["FAKE_UUID"]:
    print("deployment not found", file=sys.stderr); sys.exit(1)
verb, rest = args[2], args[3:]
def vm(instance):
    return os.path.join(vms, instance)
if verb == "vms":
    rows = [{"instance": f"master/{name}", "process_state": "running", "ips": "10.0.1.2"}
            for name in sorted(os.listdir(os.path.join(vms, "master")))]
    log.write("bosh vms\n")
    print(json.dumps({"Tables": [{"Content": "vms", "Rows": rows}], "Lines": ["Succeeded"]}))
elif verb == "scp":
    assert rest[0] == "-r", rest
    source, (instance, target) = rest[1], rest[2].split(":", 1)
    if not os.path.isdir(vm(instance)) or os.path.exists(target):
        print(f"scp: cannot copy to {instance}:{target}", file=sys.stderr); sys.exit(1)
    log.write(f"bosh scp {instance} {' '.join(sorted(os.listdir(source)))}\n")
    shutil.copytree(source, target)
elif verb == "ssh":
    instance, flag, command = rest[0], rest[1], rest[2]
    assert flag == "-c", rest
    if os.path.exists(os.path.join(vm(instance), "down")):
        print(f"Error: dialing {instance}: connection refused", file=sys.stderr); sys.exit(1)
    if rest[3:] == ["-r", "--json"]:
        log.write(f"bosh ssh {instance} {command}\n")
        ran = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
        row = {"instance": instance, "stdout": ran.stdout, "stderr": ran.stderr,
               "exit_code": str(ran.returncode)}
        print(json.dumps({"Tables": [{"Content": "", "Rows": [row]}]}))
        sys.exit(0)
    log.write(f"bosh ssh {instance} {command}\n")
    # as the real CLI: every line prefixed, and exit 1 for any failure of the command
    ran = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    for line in (ran.stdout + ran.stderr).splitlines():
        print(f"{instance}: stdout | {line}")
    if ran.returncode:
        print(f"Exit code {ran.returncode}"); sys.exit(1)
else:
    sys.exit(64)
"""

SUDO = '#!/bin/sh\nexec "$@"\n'  # the VM's sudo: the stand-in runs as the test's user
