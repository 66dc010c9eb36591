"""Sites that inherit from ``kind: SiteDefaults`` bases: the merge rules, every message
pointing at the file and line that wrote the value, the bases' own checks, and a base
change re-rendering exactly the sites that use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compiler.cli import app
from compiler.pipeline import load

SITE = """\
apiVersion: auditc.dev/v1alpha1
kind: Site
bases: {bases}
metadata:
  name: {name}
  labels:
    env: lab
spec:
  platform:
    type: kubeadm
    kubeadm:
      controlPlanes:
        - host: 10.0.0.10
  falco:
    receiver:
      address: 10.0.0.10
"""

CORP = """\
apiVersion: auditc.dev/v1alpha1
kind: SiteDefaults
metadata:
  labels:
    org: corp
    env: prod
spec:
  kubernetes:
    version: "1.29"
    serviceCIDR: 10.96.0.0/12
  platform:
    type: kubeadm
    kubeadm:
      controlPlanes:
        - host: 10.9.9.1
        - host: 10.9.9.2
  falco:
    receiver:
      port: 9765
"""

PROD = """\
apiVersion: auditc.dev/v1alpha1
kind: SiteDefaults
bases: [corp.yaml]
spec:
  kubernetes:
    version: "1.30"
  falco:
    receiver:
      service:
        type: ClusterIP
        clusterIP: 10.96.0.50
"""


# site a over prod.yaml over corp.yaml, written out by hand
FLAT = """\
apiVersion: auditc.dev/v1alpha1
kind: Site
metadata:
  name: a
  labels:
    org: corp
    env: lab
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
      service:
        type: ClusterIP
        clusterIP: 10.96.0.50
"""


def _fleet(tmp: Path, sites: dict[str, str], bases: dict[str, str] | None = None) -> Path:
    """specs/<name>.yaml for each site (its ``bases:`` value), specs/bases/* from ``bases``."""
    specs = tmp / "specs"
    (specs / "bases").mkdir(parents=True)
    for name, text in (bases if bases is not None else {"corp.yaml": CORP, "prod.yaml": PROD}).items():
        (specs / "bases" / name).write_text(text)
    for name, listed in sites.items():
        (specs / f"{name}.yaml").write_text(SITE.format(name=name, bases=listed))
    return specs


def _render(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["render", *args])
    return result.exit_code, result.output


def test_mappings_merge_lists_and_scalars_are_replaced_later_layers_win(tmp_path: Path) -> None:
    specs = _fleet(tmp_path, {"a": "[bases/prod.yaml]"})
    site = load(specs / "a.yaml").site
    assert site.metadata.labels == {"org": "corp", "env": "lab"}  # merged; the site's env wins
    assert str(site.spec.kubernetes.version) == "1.30"  # prod (above corp) wins
    assert str(site.spec.kubernetes.service_cidr) == "10.96.0.0/12"  # from corp, through prod
    assert site.spec.falco.receiver.port == 9765
    assert site.spec.falco.receiver.service.type == "ClusterIP"
    hosts = [plane.host for plane in site.spec.platform.kubeadm.control_planes]  # type: ignore[union-attr]
    assert hosts == ["10.0.0.10"], "a list is replaced whole, never merged item by item"


def test_bases_apply_in_order_the_site_on_top(tmp_path: Path) -> None:
    later = PROD.replace("bases: [corp.yaml]\n", "").replace('"1.30"', '"1.28"')
    specs = _fleet(
        tmp_path,
        {"a": "[bases/corp.yaml, bases/later.yaml]", "b": "[bases/later.yaml, bases/corp.yaml]"},
        {"corp.yaml": CORP, "later.yaml": later},
    )
    assert str(load(specs / "a.yaml").site.spec.kubernetes.version) == "1.28"
    assert str(load(specs / "b.yaml").site.spec.kubernetes.version) == "1.29"


CORP_AT = "specs/bases/corp.yaml:"


@pytest.mark.parametrize(
    ("where", "old", "new", "expected"),
    [
        # a bad value in a base is reported at the base's line, even through a base of a base
        ("bases/corp.yaml", "port: 9765", "port: 97650", CORP_AT + "19:13: spec.falco.receiver.port"),
        ("bases/prod.yaml", "type: ClusterIP", "type: Nowhere", "specs/bases/prod.yaml:10:15:"),
        ("bases/corp.yaml", "    org: corp", "    org: -corp-", CORP_AT + "5:10: metadata.labels.org"),
        ("bases/corp.yaml", "  falco:", "  falko: {}\n  falco:", CORP_AT + "17:3: spec.falko: unknown"),
        # a lint finding about a value a base wrote points at the base
        (
            "bases/corp.yaml",
            "port: 9765",
            "port: 9765\n  audit:\n    policy:\n      preset: falco",
            CORP_AT + "22:15: warning[AUD002]: spec.audit.poli",
        ),
        # the site's own value: the site's line
        ("a.yaml", "- host: 10.0.0.10", "- host: -bad-", "specs/a.yaml:13:17: spec.platform.kubeadm.control"),
    ],
)
def test_every_message_points_at_the_file_that_wrote_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, old: str, new: str, expected: str
) -> None:
    specs = _fleet(tmp_path, {"a": "[bases/prod.yaml]"})
    path = specs / where
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    monkeypatch.chdir(tmp_path)  # as users run it: the lines name specs/...
    code, output = _render("specs", "-o", "out")
    assert output.startswith(expected), output
    if "warning[" not in expected:
        assert code == 2 and not (tmp_path / "out").exists()


def test_a_value_the_site_overrides_is_not_checked_in_the_base(tmp_path: Path) -> None:
    """Only the merged site is validated: a base may hold a value every site replaces."""
    specs = _fleet(
        tmp_path, {"a": "[bases/corp.yaml]"}, {"corp.yaml": CORP.replace("10.9.9.1", "not-a-host!")}
    )
    assert _render(str(specs), "-o", str(tmp_path / "out"), "-q") == (0, "")


SITE_AT = "specs/a.yaml:3:"


@pytest.mark.parametrize(
    ("listed", "base", "expected"),
    [
        ("[bases/none.yaml]", None, SITE_AT + "9: bases[0]: bases/none.yaml: cannot read base"),
        ("[../../elsewhere.yaml]", None, SITE_AT + "9: bases[0]: ../../elsewhere.yaml is outside"),
        (
            "[bases/corp.yaml, bases/corp.yaml]",
            None,
            SITE_AT + "26: bases[1]: bases/corp.yaml is named twice",
        ),
        ("bases/corp.yaml", None, SITE_AT + "8: bases: must be a list of file names"),
        (
            "[bases/loop.yaml]",
            "bases: [loop.yaml]\n",
            "specs/bases/loop.yaml:3:9: bases[0]: bases form a cycle",
        ),
        ("[bases/b.yaml]", "kind: Site\n", "specs/bases/b.yaml:2:7: kind: a base must be kind SiteDefaults"),
        ("[bases/b.yaml]", "metadata:\n  name: x\n", "specs/bases/b.yaml:4:3: metadata.name: a SiteDefaults"),
        ("[bases/b.yaml]", "sites: []\n", "specs/bases/b.yaml:3:1: sites: unknown field 'sites'"),
        ("[bases/b.yaml]", "spec: [1]\n", "specs/bases/b.yaml:3:1: spec: must be a mapping"),
    ],
)
def test_a_broken_base_is_refused_at_its_line(
    tmp_path: Path, listed: str, base: str | None, expected: str
) -> None:
    name = "loop.yaml" if "loop" in listed else "b.yaml"
    header = "apiVersion: auditc.dev/v1alpha1\n" + (
        "" if base and base.startswith("kind") else "kind: SiteDefaults\n"
    )
    bases = {"corp.yaml": CORP} | ({name: header + base} if base else {})
    specs = _fleet(tmp_path, {"a": listed}, bases)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("untouched")
    code, output = _render(str(specs), "-o", str(out))
    assert code == 2, output
    assert expected in output.replace(str(tmp_path) + "/", ""), output
    assert [p.name for p in out.iterdir()] == ["keep"]


def test_a_file_a_base_names_is_relative_to_the_base(tmp_path: Path) -> None:
    policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n"
    with_policy = CORP + "  audit:\n    policy:\n      file: policies/corp-policy.yaml\n"
    specs = _fleet(tmp_path, {"a": "[bases/corp.yaml]"}, {"corp.yaml": with_policy})
    (specs / "bases" / "policies").mkdir()
    (specs / "bases" / "policies" / "corp-policy.yaml").write_text(policy)
    assert _render(str(specs), "-o", str(tmp_path / "out"), "-q")[0] == 0
    written = (tmp_path / "out" / "a" / "node" / "audit-policy.yaml").read_text()
    assert "level: Metadata" in written
    (specs / "bases" / "policies" / "corp-policy.yaml").unlink()
    code, output = _render(str(specs), "-o", str(tmp_path / "out"))
    assert code == 2 and "specs/bases/corp.yaml:22:13: spec.audit.policy.file: policies/corp-policy.yaml" in (
        output.replace(str(tmp_path) + "/", "")
    ), output
    assert "relative to the base that names it" in output


def test_bases_in_the_specs_directory_are_not_sites(tmp_path: Path) -> None:
    specs = _fleet(tmp_path, {"a": "[defaults.yaml]"}, {})
    (specs / "defaults.yaml").write_text(CORP)
    assert _render(str(specs), "-o", str(tmp_path / "out"), "-q")[0] == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == ["a"]
    code, output = _render(str(specs / "defaults.yaml"), "-o", str(tmp_path / "out"))
    assert code == 2 and "is a base (kind: SiteDefaults), not a site" in output


def test_a_fleet_is_told_from_its_bases_as_its_workers_compile(tmp_path: Path) -> None:
    """Specs are told from bases one by one while the workers compile the first ones: a
    base among a fleet's sites is skipped wherever it sorts, a spec named twice is one
    site, a directory of bases alone has no site, and a missing input stops the render
    before a site is staged."""
    names = [f"s{index}" for index in range(10)]
    specs = _fleet(tmp_path, dict.fromkeys(names, "[defaults.yaml]"), {})
    (specs / "defaults.yaml").write_text(CORP)
    (specs / "zz-defaults.yaml").write_text(CORP)
    out = tmp_path / "out"
    assert _render(str(specs), str(specs / "s3.yaml"), "-o", str(out), "-q", "-j", "2") == (0, "")
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == names
    code, output = _render(str(specs), str(specs / "nope.yaml"), "-o", str(tmp_path / "other"), "-j", "2")
    assert code == 2 and "nope.yaml: no such file or directory" in output, output
    assert not (tmp_path / "other").exists()
    only = tmp_path / "only"
    only.mkdir()
    (only / "defaults.yaml").write_text(CORP)
    code, output = _render(str(only), "-o", str(tmp_path / "other"))
    assert code == 2 and "no site specs (*.yaml) found" in output, output
    assert not (tmp_path / "other").exists()


def test_a_site_with_bases_renders_the_bytes_of_the_same_site_written_out(tmp_path: Path) -> None:
    specs = _fleet(tmp_path, {"a": "[bases/prod.yaml]"})
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "a.yaml").write_text(FLAT)
    assert _render(str(specs), "-o", str(tmp_path / "out"), "-q")[0] == 0
    assert _render(str(flat), "-o", str(tmp_path / "flat-out"), "-q")[0] == 0
    inherited, written = tmp_path / "out" / "a", tmp_path / "flat-out" / "a"
    names = sorted(p.relative_to(inherited).as_posix() for p in inherited.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(written).as_posix() for p in written.rglob("*") if p.is_file())
    for name in names:
        if name != "MANIFEST.json":
            assert (inherited / name).read_bytes() == (written / name).read_bytes(), name
    manifests = [json.loads((d / "MANIFEST.json").read_text()) for d in (inherited, written)]
    assert manifests[0]["files"] == manifests[1]["files"]
    assert manifests[0]["specDigest"] != manifests[1]["specDigest"], "the digest covers the bases"


def test_a_base_change_rerenders_exactly_the_sites_that_use_it(tmp_path: Path) -> None:
    sites = {"a": "[bases/prod.yaml]", "b": "[bases/corp.yaml]", "c": "[bases/other.yaml]"}
    specs = _fleet(tmp_path, sites, {"corp.yaml": CORP, "prod.yaml": PROD, "other.yaml": CORP})
    out = tmp_path / "out"
    assert _render(str(specs), "-o", str(out), "-q")[0] == 0
    before = {p: p.read_bytes() for p in out.glob("[!.]*/**/*") if p.is_file()}
    prod = specs / "bases" / "prod.yaml"
    prod.write_text(prod.read_text().replace("clusterIP: 10.96.0.50", "clusterIP: 10.96.0.51"))
    code, output = _render(str(specs), "-o", str(out), "--check")
    assert code == 1
    stale = [Path(line.split()[1]) for line in output.splitlines() if line.startswith("stale: ")]
    assert stale and {path.relative_to(out).parts[0] for path in stale} == {"a"}
    corp = specs / "bases" / "corp.yaml"
    corp.write_text(corp.read_text().replace("org: corp", "org: corp2"))
    assert _render(str(specs), "-o", str(out), "-q")[0] == 0
    changed = {p.relative_to(out).parts[0] for p in before if p.read_bytes() != before[p]}
    assert changed == {"a", "b"}, "prod inherits from corp; c has a copy of corp"


def test_a_finding_about_a_base_value_is_printed_once_for_all_its_sites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corp = CORP + "  audit:\n    policy:\n      preset: falco\n"
    _fleet(tmp_path, dict.fromkeys(("a", "b", "c"), "[bases/corp.yaml]"), {"corp.yaml": corp})
    monkeypatch.chdir(tmp_path)
    code, output = _render("specs", "-o", "out")
    assert code == 0
    from_base = [line for line in output.splitlines() if line.startswith("specs/bases/corp.yaml:22:15:")]
    assert len(from_base) == 1 and from_base[0].endswith(" (3 sites)"), output
    assert len([line for line in output.splitlines() if "warning[AUD003]" in line]) == 3, "each site's own"


def test_an_error_in_a_base_is_printed_once_for_all_its_sites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corp = CORP.replace("      port: 9765", "      port: 70000")
    sites = dict.fromkeys(("a", "b", "c"), "[bases/corp.yaml]")
    sites["d"] = "[]"  # its own errors (no base: no kubernetes either), each on a line of its own
    specs = _fleet(tmp_path, sites, {"corp.yaml": corp})
    own = (specs / "d.yaml").read_text().replace("    receiver:\n", "    receiver:\n      prot: 1\n")
    (specs / "d.yaml").write_text(own)
    monkeypatch.chdir(tmp_path)
    code, output = _render("specs", "-o", "out")
    assert code == 2
    lines = output.splitlines()
    from_base = [line for line in lines if line.startswith("specs/bases/corp.yaml:")]
    assert from_base == [
        "specs/bases/corp.yaml:19:13: spec.falco.receiver.port: must be 1..65535 (got 70000) (3 sites)"
    ], output
    assert [line for line in lines if line.startswith("specs/d.yaml:")] == [
        "specs/d.yaml:8:1: spec.kubernetes: required field is missing",
        "specs/d.yaml:16:7: spec.falco.receiver.prot: unknown field 'prot' (did you mean 'port'?)",
    ], output
    assert not (tmp_path / "out").exists()


def test_a_base_named_by_several_is_merged_once_and_the_total_is_bounded(tmp_path: Path) -> None:
    """Four bases naming the same four, eight levels deep: 32 files and corp, each merged
    once (a diamond costs nothing more); more distinct files than MAX_FILES are refused."""
    from compiler.spec import bases

    header = "apiVersion: auditc.dev/v1alpha1\nkind: SiteDefaults\n"
    specs = _fleet(
        tmp_path, {"a": "[bases/corp.yaml, " + ", ".join(f"bases/l1-{i}.yaml" for i in range(4)) + "]"}
    )
    for level in range(1, 9):
        below = ", ".join(f"l{level + 1}-{i}.yaml" for i in range(4)) if level < 8 else ""
        for i in range(4):
            text = (
                header
                + (f"bases: [{below}]\n" if below else "")
                + f"metadata: {{labels: {{l{level}: x{i}}}}}\n"
            )
            (specs / "bases" / f"l{level}-{i}.yaml").write_text(text)
    doc = load(specs / "a.yaml").doc
    assert len(doc.bases) == 1 + 32 and len({b.path for b in doc.bases}) == len(doc.bases)
    # each file once, where first named: the four l8 bases all under l7-0, in their order
    assert load(specs / "a.yaml").site.metadata.labels["l8"] == "x3"
    for i in range(30):  # 30 bases of two bases each: 90 distinct files
        (specs / "bases" / f"many-{i}.yaml").write_text(
            header + f"bases: [more-{i}-a.yaml, more-{i}-b.yaml]\n"
        )
        for end in "ab":
            (specs / "bases" / f"more-{i}-{end}.yaml").write_text(header)
    listed = ", ".join(f"bases/many-{i}.yaml" for i in range(30))
    (specs / "a.yaml").write_text(SITE.format(name="a", bases=f"[{listed}]"))
    code, output = _render(str(specs), "-o", str(tmp_path / "out"))
    assert code == 2 and f"bases exceed {bases.MAX_FILES} files" in output, output


def test_a_symlinked_base_reads_names_relative_to_where_it_is_named(tmp_path: Path) -> None:
    """Its own bases and its named files alike; and a message never names a file that
    was not read (a `..` after a folder link is kept as written)."""
    specs = _fleet(
        tmp_path, {"a": "[bases/corp.yaml]"}, {"extra.yaml": PROD.replace("bases: [corp.yaml]\n", "")}
    )
    shared = tmp_path / "specs" / "shared" / "inner"
    shared.mkdir(parents=True)
    (shared / "corp.yaml").write_text(
        CORP.replace("kind: SiteDefaults\n", "kind: SiteDefaults\nbases: [extra.yaml]\n")
    )
    (specs / "bases" / "corp.yaml").symlink_to("../shared/inner/corp.yaml")
    site = load(specs / "a.yaml").site
    assert site.spec.falco.receiver.service.type == "ClusterIP", "extra.yaml beside the link, not the target"
    (specs / "link").symlink_to("shared/inner")
    (specs / "a.yaml").write_text(SITE.format(name="a", bases="[link/../b.yaml]"))
    (specs / "shared" / "b.yaml").write_text(CORP.replace("port: 9765", "port: 97650"))
    code, output = _render(str(specs), "-o", str(tmp_path / "out"))
    assert code == 2 and "specs/link/../b.yaml:19:13: spec.falco.receiver.port" in output, output


def test_only_a_document_of_kind_sitedefaults_is_a_base(tmp_path: Path) -> None:
    """A site with a `kind: SiteDefaults` line inside a flow mapping is a site (its output
    is rendered, never removed as an orphan); a base after a UTF-8 BOM is a base."""
    specs = _fleet(tmp_path, {"a": "[bases/corp.yaml]"})
    tricky = SITE.format(name="tricky", bases="[bases/corp.yaml]").replace(
        "  labels:\n    env: lab\n", "  labels: {env: lab,\nkind: SiteDefaults\n  }\n"
    )
    (specs / "tricky.yaml").write_text(tricky)
    (specs / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + CORP.encode())
    assert _render(str(specs), "-o", str(tmp_path / "out"), "-q")[0] == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "a",
        "tricky",
    ]
