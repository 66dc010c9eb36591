"""Stand-in `kubectl` and `helm` for running the generated plan/apply.sh scripts.

There is no cluster here, so these programs follow the documented command lines and exit
codes of the calls the scripts make and record each call in $FAKE_LOG:
- `kubectl [--context C] apply --server-side --field-manager=auditc -k DIR` (DIR must hold a
  kustomization.yaml) or `... -f FILE`;
- `kubectl [--context C] -n NS get KIND/NAME`: exit 1 with "Error from server (NotFound)"
  while the workload does not exist;
- `kubectl [--context C] -n NS rollout status KIND/NAME --timeout=Ns`: exit 1 with
  "error: timed out waiting for the condition" while it is not available;
- `kubectl [--context C] get --raw /readyz` (minikube's verify step);
- `helm [--kube-context C] upgrade --install RELEASE CHART --repo URL --version V
  --namespace NS -f FILE` (FILE must exist).
$FAKE_FALCO picks the cluster's state: ready (default), absent (the workload never
appears) or unavailable (it exists but never becomes available).
"""

from __future__ import annotations

import atexit
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ---- Python stand-ins, run by one server per test process (tests/standin_server.py) --------

_CLIENT = r"""#!{python} -IS
import _socket, marshal, os, sys
BODY = {body!r}
try:
    server = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    server.connect({address!r})
except OSError:  # no server: run the body here, with the whole interpreter
    os.execv(sys.executable, [sys.executable, BODY, *sys.argv[1:]])
fds = []
for fd in (0, 1, 2):
    try:
        os.fstat(fd)
    except OSError:
        fd = os.open(os.devnull, os.O_RDWR)
    fds.append(fd)
request = marshal.dumps((BODY, sys.argv, dict(os.environ), os.getcwd()))
rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
server.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
server.shutdown(_socket.SHUT_WR)
status = server.recv(1)
sys.exit(status[0] if status else 70)
"""
_server: list[str] = []


def _server_address() -> str:
    """The Unix socket of this process's stand-in server, started on first use."""
    if not _server:
        address = str(Path(tempfile.mkdtemp(prefix="auditc-standins-")) / "socket")
        root = Path(__file__).resolve().parent.parent
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.standin_server", address],
            cwd=root,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        atexit.register(shutil.rmtree, Path(address).parent, ignore_errors=True)
        atexit.register(process.kill)  # runs first
        deadline = time.monotonic() + 30
        while not Path(address).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the stand-in server did not start (tests/standin_server.py)")
            time.sleep(0.01)
        _server.append(address)
    return _server[0]


def python_program(path: Path, body: str) -> None:
    """Install the Python stand-in ``body`` as the program ``path`` (``path``'s folder, next
    to it: ``.NAME.py``); its calls run in the stand-in server when it is up."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.absolute().with_name(f".{path.name}.py")
    source.write_text(body)
    path.write_text(_CLIENT.format(python=sys.executable, body=str(source), address=_server_address()))
    path.chmod(0o755)


KUBECTL = r"""#!/bin/sh
context=""
if [ "$1" = --context ]; then context=$2; shift 2; fi
printf 'kubectl%s %s\n' "${context:+ --context $context}" "$*" >>"$FAKE_LOG"
case "$1" in
  apply)
    shift
    # server-side apply under auditc's field manager, as the scripts call it
    [ "$1" = --server-side ] && [ "$2" = --field-manager=auditc ] ||
      { echo "error: not server-side" >&2; exit 64; }
    shift
    case "$2" in
      -k) [ -f "$3/kustomization.yaml" ] || { echo "error: no kustomization in $3" >&2; exit 1; } ;;
      -f) [ -f "$3" ] || { echo "error: the path \"$3\" does not exist" >&2; exit 1; } ;;
      *) exit 64 ;;
    esac
    echo "configured" ;;
  -n)
    ns=$2; shift 2
    case "$1" in
      get)
        if [ "${FAKE_FALCO:-ready}" = absent ]; then
          echo "Error from server (NotFound): $2 not found" >&2; exit 1
        fi
        echo "$2 in $ns" ;;
      rollout)
        [ "$2" = status ] || exit 64
        case "$4" in --timeout=*s) ;; *) echo "error: no --timeout" >&2; exit 64 ;; esac
        if [ "${FAKE_FALCO:-ready}" = ready ]; then
          echo "$3 successfully rolled out"
        else
          echo "error: timed out waiting for the condition" >&2; exit 1
        fi ;;
      *) exit 64 ;;
    esac ;;
  get)
    [ "$2" = --raw ] && [ "$3" = /readyz ] || exit 64
    echo ok ;;
  *) echo "stand-in kubectl: unexpected: $*" >&2; exit 64 ;;
esac
"""

HELM = r"""#!/bin/sh
context=""
if [ "$1" = --kube-context ]; then context=$2; shift 2; fi
printf 'helm%s %s\n' "${context:+ --kube-context $context}" "$*" >>"$FAKE_LOG"
[ "$1" = upgrade ] && [ "$2" = --install ] || { echo "stand-in helm: unexpected: $*" >&2; exit 64; }
[ "$5" = --repo ] && [ "$7" = --version ] && [ "$9" = --namespace ] || exit 64
shift 9
[ "$2" = -f ] && [ -f "$3" ] || { echo "Error: open values file: no such file" >&2; exit 1; }
echo "Release has been upgraded. Happy Helming!"
"""


def planned_wait(line: str) -> str:
    """A logged call with the rollout wait's timeout as planned (300 s): apply.sh passes
    what is left of it, a second or so less when the clock ticks in between."""
    found = re.search(r" --timeout=(\d+)s$", line)
    if found and " rollout status " in line and 290 <= int(found.group(1)) <= 300:
        return line[: found.start()] + " --timeout=300s"
    return line


def install(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("kubectl", KUBECTL), ("helm", HELM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)


# ---- a cluster with state: for `auditc plan` / `apply` ------------------------------------------
#
# kubectl and helm as programs over a state directory ($FAKE_CLUSTER), following the command
# lines auditc runs and the output shapes kubectl and helm document:
# - kubectl apply --server-side --field-manager=M (-k DIR | -f FILE): the objects of
#   `kubectl kustomize DIR` (the real kubectl builds them) stored with what an API server
#   adds (uid, resourceVersion, creationTimestamp, managedFields, a Namespace's
#   kubernetes.io/metadata.name label and finalizers, status); "<kind>/<name> serverside-applied";
# - kubectl create -f - : the object on stdin, or `Error from server (AlreadyExists)` (or
#   NotFound for a namespace not applied; kube-system and default always exist) and exit 1;
# - kubectl get RESOURCE/NAME [-o json|name] [--ignore-not-found], delete RESOURCE NAME;
# - kubectl rollout status WORKLOAD --timeout=Ns: Falco's workload exists once its chart is
#   installed (or $FAKE_WORKLOAD=present: a GitOps controller deployed it); $FAKE_FALCO=unavailable
#   makes it never available, absent makes it never appear;
# - Falco, as far as auditc verify sees it: once a release is installed, the chart's receiver
#   Service (<fullname>-k8saudit-webhook, selecting the chart's pod labels) and its
#   Endpoints (ready addresses only while the workload is available, never with
#   $FAKE_ENDPOINTS=none: a selector that matches no ready pod); a ConfigMap created
#   while Falco runs is an audit event: when a rule of the release's customRules matches it
#   (its condition's `field=value` and `field startswith "value"` clauses evaluated against
#   the event), the rule's output, fields filled in, becomes a line of Falco's log, unless
#   $FAKE_PROBE=never (an apiserver that sends nothing) or when none of the apiserver
#   configurations in $FAKE_APISERVER_CONFIGS names an audit webhook; with $FAKE_WORKLOAD=present the
#   values are those of a HelmRelease or Application the test stored; kubectl logs -l SELECTOR
#   --timestamps --prefix --since-time=T prints those lines;
# - helm upgrade --install REL CHART --repo R --version V --namespace NS -f FILE, helm list
#   -n NS --filter ^REL$ -o json, helm get values REL -n NS -o json.
# - kubectl --context $FAKE_MANAGEMENT_CONTEXT works on $FAKE_MANAGEMENT_CLUSTER instead: the
#   management cluster that runs Argo CD or Flux for a site (engineCluster: management).
# Every call is appended to $FAKE_LOG.

CLUSTER_KUBECTL = r"""
import json, os, sys, time
class _LazyYaml:  # PyYAML costs ~45 ms to import; most calls never read YAML
    def __getattr__(self, name):
        import yaml as real
        return getattr(real, name)
yaml = _LazyYaml()

state = os.environ["FAKE_CLUSTER"]
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("kubectl " + " ".join(args) + "\n")

def take(flag, default=None, value=True):
    global args
    for i, a in enumerate(args):
        if a == flag:
            got = args[i + 1] if value else True
            del args[i : i + (2 if value else 1)]
            return got
        if value and a.startswith(flag + "="):
            del args[i]
            return a.split("=", 1)[1]
    return default

if take("--context") == os.environ.get("FAKE_MANAGEMENT_CONTEXT", "\0"):
    state = os.environ["FAKE_MANAGEMENT_CLUSTER"]  # the management cluster, where the controller runs
take("--kubeconfig")
namespace = take("-n") or take("--namespace")
selector = take("-l")
since_time = take("--since-time")
for flag in ("--all-containers=true", "--prefix", "--timestamps", "--tail=-1", "--max-log-requests=20"):
    if flag in args:
        args.remove(flag)
output = take("-o")
ignore = take("--ignore-not-found", value=False)
server_side = take("--server-side", value=False)
manager = take("--field-manager")
timeout = take("--timeout")
kustomize_dir = take("-k")
file_name = take("-f")
verb, rest = args[0], args[1:]

def path_of(kind, ns, name):
    return os.path.join(state, "objects", f"{kind.lower()}.{ns or '-'}.{name}.json")

def load(kind, ns, name):
    try:
        with open(path_of(kind, ns, name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None

def store(obj):
    meta = obj.setdefault("metadata", {})
    kind, ns, name = obj["kind"], meta.get("namespace"), meta["name"]
    old = load(kind, ns, name)
    version = int(old["metadata"]["resourceVersion"]) + 1 if old else 1000
    meta["uid"] = old["metadata"]["uid"] if old else f"uid-{kind.lower()}-{name}"
    meta["resourceVersion"] = str(version)
    meta["creationTimestamp"] = old["metadata"]["creationTimestamp"] if old else "2026-12-01T10:00:00Z"
    operation = "Apply" if server_side else "Update"
    meta["managedFields"] = [{"manager": manager or "kubectl-create", "operation": operation}]
    if kind == "Namespace":
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    os.makedirs(os.path.join(state, "objects"), exist_ok=True)
    with open(path_of(kind, ns, name), "w") as f:
        json.dump(obj, f)

def resource(text):
    kind = text.split(".")[0].lower()
    return {"lease": "Lease", "leases": "Lease", "configmaps": "configmap"}.get(kind, kind)

PLURAL = {"Lease": "leases.coordination.k8s.io", "ConfigMap": "configmaps"}
NAME = {"Lease": "lease.coordination.k8s.io", "ConfigMap": "configmap"}

def release():
    releases = os.path.join(state, "releases")
    for entry in sorted(os.listdir(releases)) if os.path.isdir(releases) else []:
        with open(os.path.join(releases, entry)) as f:
            return json.load(f)
    return None

def gitops_release():
    # a HelmRelease or Application a test stored, as a controller that deployed it would:
    # in this cluster, or in the management cluster that deploys to it
    places = [os.path.join(state, "objects")]
    if os.environ.get("FAKE_MANAGEMENT_CLUSTER"):
        places.append(os.path.join(os.environ["FAKE_MANAGEMENT_CLUSTER"], "objects"))
    found = [os.path.join(p, e) for p in places if os.path.isdir(p) for e in sorted(os.listdir(p))]
    for entry in found:
        if os.path.basename(entry).startswith(("helmrelease.", "application.")):
            with open(entry) as f:
                obj = json.load(f)
            spec = obj["spec"]
            if obj["kind"] == "HelmRelease":
                return {"name": spec.get("releaseName", "falco"), "values": spec.get("values") or {}}
            helm = spec["source"].get("helm") or {}
            values = yaml.safe_load(helm.get("values") or "{}")
            return {"name": helm.get("releaseName", "falco"), "values": values}
    return None

def deployed():
    # Falco as deployed: by helm upgrade --install, or by a GitOps controller
    return release() or (gitops_release() if os.environ.get("FAKE_WORKLOAD") == "present" else None)

def receiver():
    # the chart's receiver Service name and pod labels (chart >= 2: falco.fullname); the name
    # is None when Falco pulls a cloud's audit log (its plugins hold no k8saudit: no Service)
    found = deployed()
    if found is None:
        return None
    name = found["name"] if "falco" in found["name"] else found["name"] + "-falco"
    labels = {"app.kubernetes.io/name": "falco", "app.kubernetes.io/instance": found["name"]}
    plugins = [p.get("name") for p in ((found["values"] or {}).get("falco") or {}).get("plugins") or []]
    if plugins and "k8saudit" not in plugins:
        return None, labels
    return name + "-k8saudit-webhook", labels

def falco_running():
    return deployed() is not None and os.environ.get("FAKE_FALCO", "ready") == "ready"

def matches(condition, event):
    for clause in condition.split(" and "):
        clause = clause.strip()
        if " startswith " in clause:
            field, value = clause.split(" startswith ", 1)
            if not event.get(field.strip(), "").startswith(value.strip().strip('"')):
                return False
        elif "=" in clause:
            field, value = clause.split("=", 1)
            if event.get(field.strip()) != value.strip().strip('"'):
                return False
        else:
            return False
    return True

def audit_event(obj):
    # what Falco does with the ConfigMap create: the matching rules' output, logged
    if os.environ.get("FAKE_PROBE", "arrives") == "never" or not falco_running():
        return
    configs = [p for p in os.environ.get("FAKE_APISERVER_CONFIGS", "").split(os.pathsep) if p]
    # a Falco that reads the log file (open_params file://) sees what an apiserver logs there
    plugins = (deployed()["values"].get("falco") or {}).get("plugins") or []
    reads_file = any(str(p.get("open_params", "")).startswith("file://") for p in plugins)
    wanted = "audit-log-path" if reads_file else "audit-webhook-config-file"
    if configs and not any(wanted in open(p).read() for p in configs if os.path.exists(p)):
        return  # no apiserver sends audit events where this Falco reads them
    meta = obj["metadata"]
    event = {"ka.verb": "create", "ka.target.resource": "configmaps", "ka.target.name": meta["name"],
             "ka.target.namespace": meta.get("namespace", ""), "ka.user.name": "kubernetes-admin"}
    for text in (deployed()["values"].get("customRules") or {}).values():
        for rule in yaml.safe_load(text) or []:
            if "rule" in rule and rule.get("source") == "k8s_audit" and matches(rule["condition"], event):
                output = rule["output"]
                for field in sorted(event, key=len, reverse=True):
                    output = output.replace("%" + field, event[field])
                now = time.time() + 0.2
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%09dZ" % int(now % 1 * 1e9)
                clock = time.strftime("%H:%M:%S", time.gmtime(now))
                with open(os.path.join(state, "falco.log"), "a") as log:
                    log.write(f"{stamp} {clock}.000000000: {rule['priority'].title()} {output}\n")

def workload_exists():
    if os.environ.get("FAKE_FALCO", "ready") == "absent":
        return False
    releases = os.path.join(state, "releases")
    installed = os.path.isdir(releases) and bool(os.listdir(releases))
    return os.environ.get("FAKE_WORKLOAD") == "present" or installed

def not_found(what):
    print(f'Error from server (NotFound): {what} not found', file=sys.stderr)
    sys.exit(1)

if verb == "apply":
    if not server_side or not manager:
        print("stand-in kubectl: auditc applies server-side under a field manager", file=sys.stderr)
        sys.exit(64)
    if kustomize_dir:
        import subprocess
        text = subprocess.run([os.environ["FAKE_REAL_KUBECTL"], "kustomize", kustomize_dir], check=True,
                              capture_output=True, text=True).stdout
    else:
        text = open(file_name).read()
    for obj in yaml.safe_load_all(text):
        if obj:
            store(obj)
            print(f"{obj['kind'].lower()}/{obj['metadata']['name']} serverside-applied")
elif verb == "create":
    obj = yaml.safe_load(sys.stdin.read())
    meta, kind = obj["metadata"], obj["kind"]
    where = meta.get("namespace")
    if where not in (None, "kube-system", "default") and load("Namespace", None, where) is None:
        print(f'Error from server (NotFound): namespaces "{where}" not found', file=sys.stderr)
        sys.exit(1)
    if load(kind, meta.get("namespace"), meta["name"]) is not None:
        name = meta["name"]
        print(f'Error from server (AlreadyExists): {PLURAL[kind]} "{name}" already exists', file=sys.stderr)
        sys.exit(1)
    store(obj)
    if kind == "ConfigMap":
        audit_event(obj)
    print(f"{NAME[kind]}/{meta['name']}" if output == "name" else f"{NAME[kind]}/{meta['name']} created")
elif verb == "logs":
    import calendar
    service = receiver()
    if service is None or selector != ",".join(f"{k}={v}" for k, v in sorted(service[1].items())):
        print("No resources found in " + str(namespace) + " namespace.", file=sys.stderr)
        sys.exit(0)
    since = calendar.timegm(time.strptime(since_time, "%Y-%m-%dT%H:%M:%SZ")) if since_time else 0
    try:
        lines = open(os.path.join(state, "falco.log")).read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        moment = calendar.timegm(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S"))
        if moment >= since:
            print(f"[pod/falco-5d8f7c9b4-x2vqk/falco] {line}")
elif verb == "get" and rest[:2] == ["--raw", "/readyz"]:
    if os.environ.get("FAKE_READYZ") == "fail":
        print("Error from server (InternalError): [-]etcd failed", file=sys.stderr); sys.exit(1)
    print("ok")
elif verb == "get":
    target = rest[0] if len(rest) == 1 else "/".join(rest[:2])
    kind, name = target.split("/", 1)
    if kind in ("deployment", "daemonset"):
        if not workload_exists():
            not_found(f'{kind}s.apps "{name}"')
        print(f"{kind}.apps/{name}")
        sys.exit(0)
    if kind in ("service", "endpoints"):
        service = receiver()
        if service is None or service[0] is None or name != service[0]:
            not_found(f'{kind} "{name}"')
        if kind == "service":
            body = {"kind": "Service", "metadata": {"name": name}, "spec": {"selector": service[1]}}
        else:
            address = {"ip": "10.244.0.7", "targetRef": {"kind": "Pod", "name": "falco-5d8f7c9b4-x2vqk"}}
            serving = falco_running() and os.environ.get("FAKE_ENDPOINTS") != "none"
            ready = "addresses" if serving else "notReadyAddresses"
            body = {"kind": "Endpoints", "metadata": {"name": name}, "subsets": [{ready: [address]}]}
        print(json.dumps(body))
        sys.exit(0)
    stored = os.path.join(state, "objects")
    kinds = {p.split(".")[0] for p in os.listdir(stored)} if os.path.isdir(stored) else set()
    found = None
    for candidate in kinds:
        if candidate == resource(kind).lower():
            found = load(candidate, namespace, name)
    if found is None:
        if ignore:
            sys.exit(0)
        not_found(f'{kind} "{name}"')
    if output == "jsonpath={.data}":  # the API server keeps stringData as data, base64-encoded
        import base64
        data = dict(found.get("data") or {})
        for key, value in (found.get("stringData") or {}).items():
            data[key] = base64.b64encode(value.encode()).decode()
        print(json.dumps(data, separators=(",", ":")), end="")
        sys.exit(0)
    print(json.dumps(found) if output == "json" else f"{kind}/{name}")
elif verb == "delete":
    kind, name = rest[0], rest[1]
    path = path_of(resource(kind), namespace, name)
    if os.path.exists(path):
        os.remove(path)
        print(f'{kind} "{name}" deleted')
    elif not ignore:
        not_found(f'{kind} "{name}"')
elif verb == "rollout":
    assert rest[0] == "status" and timeout and timeout.endswith("s"), args
    if not workload_exists():
        not_found(rest[1])
    if os.environ.get("FAKE_FALCO", "ready") != "ready":
        time.sleep(min(float(timeout[:-1]), 0.1))  # as if it waited the timeout out
        print("error: timed out waiting for the condition", file=sys.stderr); sys.exit(1)
    print(f'{rest[1]} successfully rolled out')
else:
    print(f"stand-in kubectl: unexpected: {sys.argv[1:]}", file=sys.stderr); sys.exit(64)
"""

CLUSTER_HELM = r"""
import json, os, sys
class _LazyYaml:  # PyYAML costs ~45 ms to import; most calls never read YAML
    def __getattr__(self, name):
        import yaml as real
        return getattr(real, name)
yaml = _LazyYaml()

state = os.environ["FAKE_CLUSTER"]
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("helm " + " ".join(args) + "\n")

def take(flag):
    for i, a in enumerate(args):
        if a == flag:
            value = args[i + 1]; del args[i : i + 2]; return value
    return None

take("--kube-context"); take("--kubeconfig")
namespace = take("--namespace") or take("-n") or "default"
releases = os.path.join(state, "releases")

def release_path(name):
    return os.path.join(releases, f"{namespace}.{name}.json")

if args[:2] == ["upgrade", "--install"]:
    name, chart = args[2], args[3]
    version, values_file = take("--version"), take("-f")
    take("--repo")
    values = yaml.safe_load(open(values_file)) or {}
    os.makedirs(releases, exist_ok=True)
    old = json.load(open(release_path(name))) if os.path.exists(release_path(name)) else None
    revision = old["revision"] + 1 if old else 1
    json.dump({"name": name, "chart": f"{chart}-{version}", "values": values, "revision": revision},
              open(release_path(name), "w"))
    print(f'Release "{name}" has been upgraded. Happy Helming!' if old else f"NAME: {name}")
elif args[0] == "list":
    wanted = take("--filter").strip("^$")
    take("-o")
    rows = []
    if os.path.exists(release_path(wanted)):
        r = json.load(open(release_path(wanted)))
        rows.append({"name": r["name"], "namespace": namespace, "revision": str(r["revision"]),
                     "updated": "2026-12-01 10:00:00.000000 +0000 UTC", "status": "deployed",
                     "chart": r["chart"], "app_version": "0.0.0"})
    print(json.dumps(rows))
elif args[:2] == ["get", "values"]:
    take("-o")
    if not os.path.exists(release_path(args[2])):
        print("Error: release: not found", file=sys.stderr); sys.exit(1)
    print(json.dumps(json.load(open(release_path(args[2])))["values"]))
else:
    print(f"stand-in helm: unexpected: {sys.argv[1:]}", file=sys.stderr); sys.exit(64)
"""


# minikube over a state directory ($FAKE_MINIKUBE/<profile>: `status`, the node's `/` in
# `node/`, the profile's ExtraOptions in `extra.json`), following minikube's documented
# behaviour: `status -p P` exits 0 only when the profile runs; `stop -p P`; `start -p P
# [--extra-config=apiserver.K=V]...` syncs $MINIKUBE_HOME/.minikube/files into the node
# (file sync) and, when --extra-config is given, takes those options as the profile's
# (kubernetes/minikube#9634), so the apiserver manifest gets exactly them; with
# $FAKE_MINIKUBE_BREAKS=1 an apiserver given the audit webhook never comes up (start
# exits 80, as minikube's K8S_APISERVER_MISSING); `ssh -p P -- CMD` runs CMD with every
# quoted absolute path under the node's directory, output with CRLF (a terminal).
MINIKUBE = r"""
import json, os, re, shutil, subprocess, sys
class _LazyYaml:  # PyYAML costs ~45 ms to import; most calls never read YAML
    def __getattr__(self, name):
        import yaml as real
        return getattr(real, name)
yaml = _LazyYaml()

args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("minikube " + " ".join(args) + "\n")
verb = args[0]
profile = args[args.index("-p") + 1]
home = os.path.join(os.environ["FAKE_MINIKUBE"], profile)
node = os.path.join(home, "node")
def status(value=None):
    path = os.path.join(home, "status")
    if value is not None:
        open(path, "w").write(value)
    return open(path).read().strip()
if verb == "status":
    print(f"host: {status()}")
    sys.exit(0 if status() == "Running" else 7)
elif verb == "stop":
    status("Stopped")
    print(f'* Stopping node "{profile}"  ...')
elif verb == "start":
    mk = os.environ.get("MINIKUBE_HOME") or os.path.expanduser("~")
    files = os.path.join(mk if mk.endswith(".minikube") else os.path.join(mk, ".minikube"), "files")
    if os.path.isdir(files):
        shutil.copytree(files, node, dirs_exist_ok=True)
    given = [a.split("=", 1)[1] for a in args if a.startswith("--extra-config=")]
    extra_path = os.path.join(home, "extra.json")
    old = json.load(open(extra_path)) if os.path.exists(extra_path) else []
    new = old
    if given:
        new = [{"Component": g.split(".", 1)[0], "Key": g.split(".", 1)[1].split("=", 1)[0],
                "Value": g.split("=", 1)[1]} for g in given]
        json.dump(new, open(extra_path, "w"))
    manifest = os.path.join(node, "etc/kubernetes/manifests/kube-apiserver.yaml")
    pod = yaml.safe_load(open(manifest))
    (container,) = [c for c in pod["spec"]["containers"] if c["name"] == "kube-apiserver"]
    keys = {o["Key"] for o in old + new if o["Component"] == "apiserver"}
    command = [c for c in container["command"] if c.split("=", 1)[0].lstrip("-") not in keys]
    command += [f"--{o['Key']}={o['Value']}" for o in new if o["Component"] == "apiserver"]
    container["command"] = command
    yaml.safe_dump(pod, open(manifest, "w"), sort_keys=False)
    webhook = any("audit-webhook-config-file" in c for c in command)
    if os.environ.get("FAKE_MINIKUBE_BREAKS") == "1" and webhook:
        status("Stopped")
        print("X Exiting due to K8S_APISERVER_MISSING: wait 6m0s for node: apiserver process never appeared")
        sys.exit(80)
    status("Running")
    print(f'* Done! kubectl is now configured to use "{profile}" cluster')
elif verb == "ssh":
    if status() != "Running":
        print(f'The control-plane node {profile} host is not running', file=sys.stderr); sys.exit(80)
    command = re.sub(r"'/", "'" + node + "/", args[args.index("--") + 1])
    ran = subprocess.run(["sh", "-c", command], capture_output=True)
    sys.stdout.buffer.write(ran.stdout.replace(b"\n", b"\r\n"))
    sys.exit(ran.returncode)
else:
    sys.exit(64)
"""


def install_minikube(bin_dir: Path) -> None:
    """The stand-in minikube above, and a sudo that runs its command (the node's sudo)."""
    python_program(bin_dir / "minikube", MINIKUBE)
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    (bin_dir / "sudo").chmod(0o755)


def install_cluster(bin_dir: Path) -> None:
    """The stateful kubectl and helm above, run by this interpreter (the tests set
    $FAKE_REAL_KUBECTL to the real kubectl, for `kubectl kustomize`)."""
    for name, body in (("kubectl", CLUSTER_KUBECTL), ("helm", CLUSTER_HELM)):
        python_program(bin_dir / name, body)
