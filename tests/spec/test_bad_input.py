"""Broken specs: exit 2, one line per problem naming file:line:col and the field path,
no traceback, and the output directory left exactly as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compiler.cli import app
from tests.tools import no_hang

GOOD = """\
apiVersion: auditc.dev/v1alpha1
kind: Site
metadata:
  name: site-a
spec:
  kubernetes:
    version: "1.30"
    serviceCIDR: 10.96.0.0/12
  platform:
    type: kubeadm
    kubeadm:
      controlPlanes:
        - host: 10.0.0.10
  falco:
    receiver:
      address: 10.0.0.10
      port: 9765
"""


def _alias_bomb(levels: int = 9) -> str:
    """Billion laughs: each level refers to the previous one ten times."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*l{level - 1}"] * 10)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


ALIAS_BOMB = _alias_bomb()


def _with(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new)


# (id, spec text, expected location prefix "line:col" or None, expected text in the message)
CASES: list[tuple[str, str | bytes, str | None, str]] = [
    (
        "port-range",
        _with("port: 9765", "port: 70000"),
        "17:13",
        "spec.falco.receiver.port: must be 1..65535 (got 70000)",
    ),
    (
        "unknown-field",
        _with("      port: 9765", "      prot: 9765"),
        "17:7",
        "unknown field 'prot' (did you mean 'port'?)",
    ),
    (
        "unknown-field-in-platform-block",  # suggested from the registry's schema, which has every platform's
        _with("        - host: 10.0.0.10", "        - host: 10.0.0.10\n          prot: 2222"),
        "14:11",
        "spec.platform.kubeadm.controlPlanes[0].prot: unknown field 'prot' (did you mean 'port'?)",
    ),
    ("version-float", _with('version: "1.30"', "version: 1.30"), "7:14", "quote it"),
    ("version-old", _with('version: "1.30"', 'version: "1.12"'), "7:14", "oldest supported is 1.13"),
    ("name-dns", _with("name: site-a", "name: Site_A"), "4:9", "metadata.name: must be a DNS-1123 label"),
    (
        "host-injection",
        _with("host: 10.0.0.10", 'host: "10.1.1.1; touch /tmp/x"'),
        "13:17",
        "no spaces, quotes or shell",
    ),
    ("address-svc", _with("address: 10.0.0.10", "address: falco.falco.svc"), "16:16", "cannot resolve it"),
    (
        "address-cluster-local",
        _with("address: 10.0.0.10", "address: falco.falco.svc.cluster.local"),
        "16:16",
        "cluster DNS name",
    ),
    (
        "address-missing",
        _with("      address: 10.0.0.10\n", ""),
        "15:5",
        "spec.falco.receiver.address: required",
    ),
    (
        "nodeport-range",
        _with("      port: 9765", "      service: {nodePort: 8080}"),
        "17:27",
        "must be 30000..32767",
    ),
    (
        "clusterip-outside-cidr",
        _with("      port: 9765", "      service: {type: ClusterIP, clusterIP: 10.200.0.5}"),
        "17:45",
        "outside spec.kubernetes.serviceCIDR",
    ),
    ("cidr-bad", _with("10.96.0.0/12", "10.96.0.1/12"), "8:18", "CIDR"),
    ("dynamic-1.30", _with("  falco:", "  audit: {dynamic: true}\n  falco:"), "14:20", "1.13..1.18"),
    (
        "sinks-on-kubeadm",
        _with("  falco:", "  sinks: [{kind: ClusterLogSink, name: s}]\n  falco:"),
        "14:3",
        "only on platform pks",
    ),
    (
        "stray-platform-block",
        _with("    kubeadm:", "    pks: {api: a, cluster: b}\n    kubeadm:"),
        "11:5",
        "does not belong to type kubeadm",
    ),
    (
        "platform-type",
        _with("type: kubeadm", "type: openshift"),
        "10:11",
        "must be one of: kubeadm | minikube | pks",
    ),
    ("duplicate-key", _with("  falco:", "  falco: {}\n  falco:"), "15:3", "duplicate key"),
    ("syntax", _with("kind: Site", "kind: [Site"), "3:9", "invalid YAML: expected ',' or ']'"),
    (
        "merge-keys",
        _with(
            "        - host: 10.0.0.10",
            "        - &cp {host: 10.0.0.10, port: 0}\n        - {<<: *cp, host: 10.0.0.11}",
        ),
        "13:39",
        "controlPlanes[1].port: must be 1..65535 (got 0)",
    ),
    ("empty", "", None, "empty"),
    ("comments-only", "# nothing here\n", None, "empty"),
    ("not-a-mapping", "- a\n- b\n", "1:1", "top level must be a mapping"),
    ("binary", b"\x00\x01\x02binary", None, "binary"),
    ("latin1", "name: caf\xe9\n".encode("latin-1"), None, "not UTF-8"),
    ("too-big", "a: " + "x" * (1024 * 1024 + 10) + "\n", None, "limit is 1048576"),
    ("alias-bomb", ALIAS_BOMB, None, "alias bomb"),
    (
        "policy-rule-level",
        _with("  falco:", "  audit: {policy: {rules: [{level: Everything}]}}\n  falco:"),
        "14:36",
        "must be one of: None | Metadata",
    ),
    (
        "policy-nonresource-slash",
        _with(
            "  falco:", '  audit: {policy: {rules: [{level: None, nonResourceURLs: ["healthz"]}]}}\n  falco:'
        ),
        "14:60",
        "must begin with a '/'",
    ),
    (
        "missing-file",
        _with(
            "      port: 9765",
            "      port: 9765\n      tls: {enabled: true, existingSecret: s, caFile: nope.pem}",
        ),
        "18:55",
        "nope.pem: cannot read the file",
    ),
    (
        "gitops-no-repo",
        _with("  falco:", "  gitops: {engine: flux}\n  falco:"),
        "14:3",
        "spec.gitops.repoURL: required",
    ),
    # what a careless user or an attacker writes (issue 9): each refused where it stands
    ("name-trailing-newline", _with("name: site-a", 'name: "site-a\\n"'), "4:9", "must be a DNS-1123 label"),
    ("host-zone-id", _with("host: 10.0.0.10", 'host: "fe80::1%;$(x)"'), "13:17", "an IP address or a DNS"),
    ("address-zone-id", _with("address: 10.0.0.10", 'address: "fe80::1%eth0"'), "16:16", "an IP address"),
    ("set-tag", _with("      port: 9765", "      port: 9765\n    values: !!set {a, b}"), "18:13", "!!set"),
    (
        "binary-tag",
        _with("      port: 9765", "      port: 9765\n    values: {x: !!binary aGk=}"),
        "18:17",
        "!!binary",
    ),
    (
        "timestamp",
        _with("      port: 9765", "      port: 9765\n    values: {x: 2024-01-01}"),
        "18:17",
        "timestamp",
    ),
    (
        "surrogate",
        _with("      port: 9765", '      port: 9765\n    rules: {disable: ["\\ud800"]}'),
        "18:23",
        "surrogate",
    ),
    (
        "surrogate-key",
        _with("      port: 9765", '      port: 9765\n    values: {"\\udfff": 1}'),
        "18:14",
        "surrogate",
    ),
    ("digits", _with("port: 9765", "port: " + "1" * 5000), "17:13", "more digits than can be read"),
    (
        "code-point",
        _with("      port: 9765", '      port: 9765\n    rules: {disable: ["\\U00110000"]}'),
        "18:24",
        "beyond U+10FFFF",
    ),
    ("int-tag", _with("host: 10.0.0.10", "host: !!int abc"), "13:17", "not what its tag says"),
    (
        "version-digits",
        _with('version: "1.30"', 'version: "1.' + "9" * 5000 + '"'),
        "7:14",
        "must be a version",
    ),
    ("root-tag", "!!python/object:os.system {}\n", "1:1", "!!python/object:os.system value is not allowed"),
    ("merge-itself", "base: &b {<<: *b}\n", "1:7", "merges itself"),
    (
        "duration-huge",
        _with("  falco:", "  audit: {webhook: {batch: {maxWait: 99999999999999999999h}}}\n  falco:"),
        "14:38",
        "2562047h",
    ),
    (
        "duration-long",
        _with("  falco:", "  audit: {webhook: {batch: {maxWait: " + "5s" * 5000 + "}}}\n  falco:"),
        "14:38",
        "must be a duration",
    ),
    (
        "manifest-root",
        _with("      controlPlanes:", "      manifestPath: /\n      controlPlanes:"),
        "12:21",
        "the absolute path of a file",
    ),
]


@pytest.mark.parametrize(("case", "text", "where", "expected"), CASES, ids=[c[0] for c in CASES])
def test_broken_spec_is_reported_and_nothing_is_written(
    case: str, text: str | bytes, where: str | None, expected: str, tmp_path: Path
) -> None:
    spec = tmp_path / "site.yaml"
    spec.write_bytes(text.encode() if isinstance(text, str) else text)
    output = tmp_path / "output"
    (output / "site-a").mkdir(parents=True)
    (output / "site-a" / "keep.txt").write_text("previous render\n")
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}

    with no_hang(case):
        result = CliRunner().invoke(app, ["render", str(spec), "-o", str(output)])

    assert result.exit_code == 2, result.output
    stderr = result.stderr
    assert expected in stderr, stderr
    if where:
        assert f"{spec}:{where}:" in stderr, stderr
    else:
        assert str(spec) in stderr
    assert "Traceback" not in stderr
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before


def test_every_problem_in_a_spec_is_reported_at_once(tmp_path: Path) -> None:
    spec = tmp_path / "site.yaml"
    spec.write_text(_with("port: 9765", "port: 0").replace("name: site-a", "name: A"))
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2
    assert "metadata.name" in result.stderr and "spec.falco.receiver.port" in result.stderr


def test_one_broken_spec_among_good_ones_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(_with("name: site-a", "name: site-b").replace("port: 9765", "port: -1"))
    output = tmp_path / "output"
    result = CliRunner().invoke(app, ["render", str(tmp_path), "-o", str(output)])
    assert result.exit_code == 2
    assert not output.exists()


def test_duplicate_site_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    result = CliRunner().invoke(app, ["render", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "already used by" in result.stderr


def test_no_traceback_from_the_real_command(tmp_path: Path) -> None:
    spec = tmp_path / "site.yaml"
    spec.write_text(_with("port: 9765", "port: 70000"))
    result = subprocess.run(
        [sys.executable, "-m", "compiler", "render", str(spec), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[0]
        == f"{spec}:17:13: spec.falco.receiver.port: must be 1..65535 (got 70000)"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_control_characters_are_escaped_in_messages(tmp_path: Path) -> None:
    spec = tmp_path / "site.yaml"
    spec.write_text(_with("      port: 9765", '      port: 9765\n    "\\x1b]0;pwned\\x07\\nx": 1'))
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b]0;pwned\\x07\\nx" in result.stderr


def test_a_long_value_is_quoted_short(tmp_path: Path) -> None:
    spec = tmp_path / "site.yaml"
    spec.write_text(_with("type: kubeadm", "type: " + "k" * 10_000))
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2
    # each line: the spec's path (however long the temporary directory's is) and at most
    # 200 characters more
    assert max(len(line.replace(str(spec), "")) for line in result.stderr.splitlines()) < 200


def _ca_spec(tmp_path: Path, ca: str) -> Path:
    spec = tmp_path / "site.yaml"
    tls = f"      tls: {{enabled: true, existingSecret: s, caFile: {ca}}}\n"
    spec.write_text(_with("      port: 9765\n", "      port: 9765\n" + tls))
    return spec


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("fifo", "is a FIFO (named pipe), expected a regular file"),
        ("dev-zero", "is a character device, expected a regular file"),  # with --files-root /dev
        ("directory", "is a directory, expected a regular file"),
        ("loop", "a symlink loop"),
        ("outside", "is outside the spec's directory"),
        ("etc", "is outside the spec's directory"),
        ("key", "holds a PRIVATE KEY block: only PEM certificates may pass"),
        ("pgp", "holds a PGP PRIVATE KEY BLOCK block"),
        ("putty", "holds something that looks like a private key"),
    ],
)
def test_named_files_are_regular_files_inside_the_spec_directory(
    tmp_path: Path, kind: str, expected: str
) -> None:
    """A spec never makes auditc hang on a FIFO, read a device forever, or read (and echo) a
    file elsewhere on the machine; a CA file never carries a key into the kubeconfig."""
    import os

    target = tmp_path / "ca.pem"
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "dev-zero":
        target.symlink_to("/dev/zero")
    elif kind == "directory":
        target.mkdir()
    elif kind == "loop":
        target.symlink_to("ca2.pem")
        (tmp_path / "ca2.pem").symlink_to("ca.pem")
    elif kind == "outside":
        secret = tmp_path.parent / f"{tmp_path.name}-secret.pem"
        secret.write_text("-----BEGIN CERTIFICATE-----\nsecret line\n-----END CERTIFICATE-----\n")
        target.symlink_to(secret)
    elif kind == "etc":
        target.symlink_to("/etc/passwd")
    else:
        extra = {
            "key": "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n",
            "pgp": "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQ\n-----END PGP PRIVATE KEY BLOCK-----\n",
            "putty": "PuTTY-User-Key-File-3: ssh-rsa\nPrivate-Lines: 1\nAAAA\n",
        }[kind]
        target.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" + extra)
    args = ["render", str(_ca_spec(tmp_path, "ca.pem")), "-o", str(tmp_path / "out")]
    if kind == "dev-zero":
        args += ["--files-root", "/dev"]
    with no_hang(kind):
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and f"{tmp_path / 'site.yaml'}:18:" in result.stderr
    assert "secret line" not in result.stderr and "root:" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_files_root_allows_a_shared_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    site_dir = tmp_path / "sites"
    site_dir.mkdir()
    spec = _ca_spec(site_dir, "../shared/ca.pem")
    refused = CliRunner().invoke(app, ["validate", str(spec)])
    assert refused.exit_code == 2 and "--files-root" in refused.stderr
    allowed = CliRunner().invoke(app, ["validate", str(spec), "--files-root", str(shared)])
    assert allowed.exit_code == 0, allowed.output


def test_a_fifo_or_device_as_the_spec_is_refused(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "site.yaml"
    os.mkfifo(fifo)
    for spec in (fifo, Path("/dev/zero")):
        with no_hang(str(spec)):
            result = CliRunner().invoke(app, ["validate", str(spec)])
        assert result.exit_code == 2 and "expected a regular file" in result.stderr


def test_only_the_certificates_of_a_ca_file_reach_the_kubeconfig(tmp_path: Path) -> None:
    import base64

    import yaml

    cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    (tmp_path / "ca.pem").write_text("subject=CN=receiver\n" + cert)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", str(_ca_spec(tmp_path, "ca.pem")), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    kubeconfig = yaml.safe_load((out / "site-a/node/audit-webhook.kubeconfig").read_text())
    data = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
    assert base64.b64decode(data).decode() == cert


def test_render_never_replaces_what_auditc_did_not_write(tmp_path: Path) -> None:
    spec = tmp_path / "site.yaml"
    spec.write_text(GOOD)
    out = tmp_path / "out"
    (out / "site-a").mkdir(parents=True)
    (out / "site-a" / "notes.txt").write_text("mine\n")
    result = CliRunner().invoke(app, ["render", str(spec), "-o", str(out)])
    assert result.exit_code == 2 and "holds files auditc did not write" in result.stderr
    assert (out / "site-a" / "notes.txt").read_text() == "mine\n"
    (out / "site-a" / "notes.txt").unlink()
    (out / "site-a").rmdir()
    (out / "site-a").symlink_to(tmp_path)
    result = CliRunner().invoke(app, ["render", str(spec), "-o", str(out)])
    assert result.exit_code == 2 and "is a symlink" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["site-a"], "nothing left behind"


def test_status_lines_escape_control_characters(tmp_path: Path) -> None:
    spec = tmp_path / "a\x1b[31mb.yaml"
    spec.write_text("kind: Site\n")
    result = CliRunner().invoke(app, ["validate", str(spec)])
    assert result.exit_code == 2
    assert "\x1b" not in result.stdout + result.stderr and "a\\x1b[31mb.yaml" in result.stdout


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_duplicate_name_is_reported_even_where_the_output_is_not_auditcs(tmp_path: Path, jobs: str) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in [f"s{n:02d}" for n in range(9)]:  # enough specs for workers to compile them
        (specs / f"{name}.yaml").write_text(_with("name: site-a", f"name: {name}"))
    (specs / "a.yaml").write_text(GOOD)
    (specs / "b.yaml").write_text(GOOD)
    output = tmp_path / "out"
    (output / "site-a").mkdir(parents=True)
    (output / "site-a" / "notes.txt").write_text("mine\n")
    result = CliRunner().invoke(app, ["render", str(specs), "-o", str(output), "-j", jobs])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert [line for line in lines if "did not write" in line] == [
        f"{output / 'site-a'}: holds files auditc did not write (no auditc MANIFEST.json): "
        "move it away or render into another output directory (-o)"
    ]
    assert [line for line in lines if "already used by" in line] == [
        f"{specs / 'b.yaml'}: metadata.name: site name 'site-a' is already used by {specs / 'a.yaml'}"
    ]
    assert sorted(p.name for p in output.iterdir()) == ["site-a"]
    assert (output / "site-a" / "notes.txt").read_text() == "mine\n"
