"""Stand-in `kubectl` and `helm` for running the generated plan/apply.sh scripts.

There is no cluster here, so these programs follow the documented command lines and exit
codes of the calls the scripts make and record each call in $FAKE_LOG:
- `kubectl [--context C] apply -k DIR` (DIR must hold a kustomization.yaml) or `apply -f FILE`;
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

from pathlib import Path

KUBECTL = r"""#!/bin/sh
context=""
if [ "$1" = --context ]; then context=$2; shift 2; fi
printf 'kubectl%s %s\n' "${context:+ --context $context}" "$*" >>"$FAKE_LOG"
case "$1" in
  apply)
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


def install(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("kubectl", KUBECTL), ("helm", HELM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
