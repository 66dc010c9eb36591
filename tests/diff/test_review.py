"""auditc diff --base GITREF: pull-request review of rendered changes, on a temporary git
repository with two commits."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from compiler.cli import app
from compiler.diff.formats import markdown, text
from compiler.diff.review import FileDiff, Review, SiteDiff, _signature, review
from compiler.redaction import hide_pair, hide_secrets
from tests.sites import ROOT

runner = CliRunner()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "ci")
    # the examples these tests edit (each review compiles every spec twice: keep it small)
    shutil.copytree(ROOT / "specs" / "files", repo / "specs" / "files")
    for name in ("prod-east.yaml", "legacy-lab.yaml", "edge-tls.yaml", "eks-prod.yaml", "site.schema.json"):
        shutil.copy(ROOT / "specs" / name, repo / "specs" / name)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    return repo


def _edit(repo: Path, name: str, old: str, new: str) -> None:
    path = repo / "specs" / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_no_change_no_difference(repo: Path) -> None:
    result = runner.invoke(app, ["diff", str(repo / "specs"), "--base", "HEAD"])
    assert result.exit_code == 0, result.stderr
    assert "no differences since HEAD" in result.stdout


def test_a_change_is_shown_with_its_risks(repo: Path) -> None:
    _edit(repo, "prod-east.yaml", "maxAge: 30", "maxAge: 7")
    _edit(repo, "edge-tls.yaml", "    webhook:\n", "    webhook:\n      enabled: false\n")
    _git(repo, "commit", "-qam", "change")
    result = review([repo / "specs"], "HEAD~1")
    sites = {s.site: s for s in result.sites}
    assert sites["legacy-lab"].status == "unchanged"
    east = sites["prod-east"]
    assert east.status == "changed"
    assert [(r.change, r.id, r.field) for r in east.risks] == [
        ("introduced", "AUD006", "spec.audit.log.maxAge")
    ]
    assert any("--audit-log-maxage=7" in f.diff or "'audit-log-maxage' '7'" in f.diff for f in east.files)
    edge = sites["edge-tls"]
    assert ("introduced", "webhook-off") in {(r.change, r.id) for r in edge.risks}
    assert {f.path: f.status for f in edge.files}["node/audit-webhook.kubeconfig"] == "removed"
    assert all(f.path != "MANIFEST.json" for s in result.sites for f in s.files), "no digest noise"

    cli = runner.invoke(app, ["diff", str(repo / "specs"), "--base", "HEAD~1", "--format", "json"])
    assert cli.exit_code == 1
    document = json.loads(cli.stdout)
    assert document["differs"] is True and document["base"] == "HEAD~1"


def test_resolved_risks_and_added_and_removed_sites(repo: Path) -> None:
    _edit(repo, "prod-east.yaml", "maxAge: 30", "maxAge: 7")
    _git(repo, "commit", "-qam", "lower")
    _edit(repo, "prod-east.yaml", "maxAge: 7", "maxAge: 30")
    (repo / "specs" / "legacy-lab.yaml").unlink()
    shutil.copy(repo / "specs" / "edge-tls.yaml", repo / "specs" / "edge-2.yaml")
    _edit(repo, "edge-2.yaml", "name: edge-tls", "name: edge-2")
    result = review([repo / "specs"], "HEAD")  # the working tree against the last commit
    sites = {s.site: s for s in result.sites}
    assert [(r.change, r.id) for r in sites["prod-east"].risks] == [("resolved", "AUD006")]
    assert sites["legacy-lab"].status == "removed"
    assert sites["edge-2"].status == "added"


def test_a_single_spec_file_and_a_spec_new_since_base(repo: Path) -> None:
    shutil.copy(repo / "specs" / "edge-tls.yaml", repo / "specs" / "fresh.yaml")
    _edit(repo, "fresh.yaml", "name: edge-tls", "name: fresh")
    result = review([repo / "specs" / "fresh.yaml"], "HEAD")
    assert [(s.site, s.status) for s in result.sites] == [("fresh", "added")]


def test_bad_refs_are_user_errors(repo: Path) -> None:
    for ref in ("no-such-branch", "--upload-pack=touch PWNED"):
        result = runner.invoke(app, ["diff", str(repo / "specs"), "--base", ref])
        assert result.exit_code == 2, result.stdout
    assert not (repo / "PWNED").exists()
    assert runner.invoke(app, ["diff", str(repo / "specs"), "--live"]).exit_code == 2
    missing = runner.invoke(app, ["diff", str(repo / "specs"), "--base", "origin/main"])  # never fetched
    assert missing.exit_code == 2
    assert "--base: no commit 'origin/main' in this repository (fetch it first" in missing.output


def test_secrets_never_appear(repo: Path) -> None:
    secret = "hunter2-Xy9"
    _edit(repo, "prod-east.yaml", "  audit:\n", f"    values:\n      apiToken: {secret}\n  audit:\n")
    for fmt in ("text", "markdown", "json"):
        result = runner.invoke(app, ["diff", str(repo / "specs"), "--base", "HEAD", "--format", fmt])
        assert result.exit_code == 1
        assert secret not in result.stdout
        assert "apiToken: <hidden" in result.stdout
    first = runner.invoke(app, ["diff", str(repo / "specs"), "--base", "HEAD", "--format", "json"]).stdout
    second = runner.invoke(app, ["diff", str(repo / "specs"), "--base", "HEAD", "--format", "json"]).stdout
    assert first == second, "the review is deterministic"


def test_hide_secrets_shows_changed_or_unchanged_only() -> None:

    assert hide_pair("password: a\n", "password: a\n") == ("password: <hidden>\n", "password: <hidden>\n")
    assert hide_pair("password: a\n", "password: b\n") == (
        "password: <hidden, old value>\n",
        "password: <hidden, new value>\n",
    )
    assert hide_secrets("name: a\n") == "name: a\n"
    env = "env:\n- name: API_TOKEN\n  value: abc123\n"
    assert "abc123" not in hide_secrets(env)
    pem = "key: |\n  -----BEGIN PRIVATE KEY-----\n  MIIEv\n  -----END PRIVATE KEY-----\nnext: 1\n"
    hidden = hide_secrets(pem)
    assert "MIIEv" not in hidden and hidden.endswith("next: 1\n")
    assert "abc" not in hide_secrets("slack:\n  webhookurl: https://hooks.example.com/abc\n")


def test_markdown_stays_under_the_comment_limit() -> None:
    """A large fleet diff, every site's change its own: the comment is cut with a note,
    never over GitHub's limit."""
    sites = [
        SiteDiff(
            f"site-{n:03d}",
            "changed",
            [
                FileDiff(
                    f"node/file-{k}.yaml",
                    "changed",
                    "".join(f"+line {i} {n} {'x' * 80}\n" for i in range(400)),
                )
                for k in range(3)
            ],
        )
        for n in range(100)
    ]
    text = markdown(Review("origin/main", sites))
    assert len(text) <= 65_536
    assert "Cut to stay under GitHub's 65,536-character comment limit" in text
    assert text.count("<details>") == text.count("</details>")
    assert "| `site-099` | changed | 3 |" in text, "the summary table lists every distinct change"


def test_markdown_counts_the_summary_and_risks_against_the_limit() -> None:
    from compiler.diff.review import Risk

    sites = [
        SiteDiff(
            f"site-{n:04d}",
            "changed",
            [],
            [Risk("introduced", "AUD006", "warning", "f", f"{n} " + "x" * 300)],
        )
        for n in range(2000)
    ]
    text = markdown(Review("origin/main", sites))
    assert len(text) <= 65_536
    assert "summary or risk line(s)" in text


def test_a_change_made_in_many_sites_alike_reads_as_one() -> None:
    """412 sites whose diffs differ only in their own names (a shared value edited): one
    group, one diff shown, the risk counted per site, the comment small."""
    from compiler.diff.formats import as_json, text
    from compiler.diff.review import Risk

    def site(name: str) -> SiteDiff:
        head = "--- a/node/kubeadm-config.yaml\n+++ b/node/kubeadm-config.yaml\n"
        diff = f"{head}-# site {name}\n+# site {name} v2\n"
        risk = Risk(
            "introduced", "AUD006", "warning", "spec.audit.log.maxAge", f"{name}: maxAge 7 is below 30"
        )
        return SiteDiff(name, "changed", [FileDiff("node/kubeadm-config.yaml", "changed", diff)], [risk])

    names = [f"edge-{n:03d}" for n in range(412)]
    review_ = Review(
        "origin/main", [*map(site, names), SiteDiff("core", "changed", [FileDiff("x", "changed", "+y\n")])]
    )
    assert [len(g.sites) for g in review_.groups] == [1, 412]
    shown = markdown(review_)
    assert len(shown) < 5_000 and "413 site(s) changed, 2 distinct change(s)." in shown
    assert "| `edge-000`, `edge-001`, `edge-002` and 409 more | changed | 1 |" in shown
    assert "in 412 sites (`edge-000`, `edge-001`, `edge-002` and 409 more)" in shown
    assert "Risks: AUD006 introduced in 412 site(s)." in shown.splitlines()[2]
    assert text(review_).splitlines()[-1] == "risks: AUD006 introduced in 412 site(s)"
    assert shown.count("<details>") == 2
    assert "== 412 sites: the same change (changed since origin/main; shown for edge-000" in text(review_)
    groups = json.loads(as_json(review_))["groups"]
    assert [g["shown"] for g in groups] == ["core", "edge-000"] and len(groups[1]["sites"]) == 412


def test_a_shared_edit_across_sites_groups_end_to_end(repo: Path) -> None:
    for n in range(3):
        text = (repo / "specs/prod-east.yaml").read_text().replace("name: prod-east", f"name: east-{n}")
        (repo / f"specs/east-{n}.yaml").write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "three more sites")
    for n in range(3):
        _edit(repo, f"east-{n}.yaml", "maxAge: 30", "maxAge: 7")
    _git(repo, "commit", "-qam", "shorter retention")
    result = review([repo / "specs"], "HEAD~1")
    assert [g.sites for g in result.groups] == [["east-0", "east-1", "east-2"]]
    assert {r.id for r in result.groups[0].change.risks} == {"AUD006"}


def test_an_edit_alike_groups_where_the_lines_around_it_and_the_digests_differ(repo: Path) -> None:
    """Sites of their own addresses and regions: the same policy edit changes the same lines
    of their audit policy, but the context of their label edits and their patch scripts'
    config digest (the webhook kubeconfig holds the address) differ. Still one change each;
    a site that adds other lines is a change of its own."""
    for n in range(3):
        text = (repo / "specs/prod-east.yaml").read_text().replace("name: prod-east", f"name: east-{n}")
        text = text.replace("env: prod\n", f"env: prod\n    region: r{n}\n    zone: z\n")
        (repo / f"specs/east-{n}.yaml").write_text(text.replace("10.0.1.171", f"10.0.2.{n + 10}"))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "three sites of their own")
    for n in range(3):
        stages = "      omitStages: [RequestReceived, ResponseStarted]\n"
        _edit(repo, f"east-{n}.yaml", "      preset: falco\n", f"      preset: falco\n{stages}")
        _edit(repo, f"east-{n}.yaml", "    zone: z\n", "    zone: y\n")
    _edit(repo, "east-2.yaml", "maxAge: 30", "maxAge: 31")
    result = review([repo / "specs"], "HEAD")
    assert [g.sites for g in result.groups] == [["east-0", "east-1"], ["east-2"]]
    shown = {f.path for f in result.groups[0].change.files}
    assert {"node/audit-policy.yaml", "node/apiserver-config.patch.sh"} <= shown
    first, second = (_signature(s, result.masker(s)) for s in result.sites if s.site in ("east-0", "east-1"))
    assert first == second
    diffs = {s.site: {f.path: f.diff for f in s.files} for s in result.sites}
    assert diffs["east-0"]["cluster/namespace.yaml"] != diffs["east-1"]["cluster/namespace.yaml"], (
        "the context lines differ (region r0, r1)"
    )


def _own_sites(repo: Path, addresses: list[str]) -> None:
    for n, address in enumerate(addresses):
        text = (repo / "specs/prod-east.yaml").read_text().replace("name: prod-east", f"name: east-{n}")
        (repo / f"specs/east-{n}.yaml").write_text(text.replace("10.0.1.171", address))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "sites of their own addresses")


def test_a_fleet_wide_edit_removing_each_sites_own_address_is_one_change(repo: Path) -> None:
    """Turning the webhook off removes each site's kubeconfig, the address in it its own:
    one change for the sites, whose removed lines differ only there."""
    _own_sites(repo, ["10.0.2.10", "10.0.2.11", "10.0.3.7"])
    for n in range(3):
        _edit(repo, f"east-{n}.yaml", "  audit:\n", "  audit:\n    webhook: {enabled: false}\n")
    result = review([repo / "specs"], "HEAD")
    (group,) = [g for g in result.groups if g.sites[0].startswith("east-")]
    assert group.sites == ["east-0", "east-1", "east-2"]
    removed = {f.path: f.status for f in group.change.files}
    assert removed["node/audit-webhook.kubeconfig"] == "removed"
    lines = [f.diff for f in group.change.files if f.path == "node/audit-webhook.kubeconfig"]
    assert "10.0.2.10" in lines[0], "the group shows the first site's own lines"
    assert "but for their names, the values their specs write and file digests" in text(result)


def test_moving_the_engine_to_a_management_cluster_is_one_change(repo: Path) -> None:
    """The objects auditc names after the site (auditc-<site>, auditc-<site>-kubeconfig,
    <site>-falco) hold its name inside a longer one: still one change for the fleet."""
    _own_sites(repo, ["10.0.2.10", "10.0.2.11"])
    for n in range(2):
        repo_url = "    repoURL: https://git.example.com/platform/audit.git\n"
        _edit(repo, f"east-{n}.yaml", repo_url, f"{repo_url}    engineCluster: management\n")
    result = review([repo / "specs"], "HEAD")
    (group,) = [g for g in result.groups if g.sites[0].startswith("east-")]
    assert group.sites == ["east-0", "east-1"]
    added = {f.path for f in group.change.files if f.status == "added"}
    assert "management/falco-release.yaml" in added
    shown = "".join(f.diff for f in group.change.files)
    assert "auditc-east-0-kubeconfig" in shown and "auditc-east-0-management" in shown


def test_a_value_the_change_edits_is_never_taken_for_the_sites_own(repo: Path) -> None:
    """Only the values a change leaves in place stand for their paths. Two sites that set
    different values stay apart, and so does a site that takes another's address (a copy
    and paste that points its webhook at the other site's Falco)."""
    _own_sites(repo, ["10.0.2.10", "10.0.2.11", "10.0.2.12", "10.0.2.13"])
    for n, size in enumerate(["200", "200", "2000"]):
        _edit(repo, f"east-{n}.yaml", "maxSize: 100", f"maxSize: {size}")
    result = review([repo / "specs"], "HEAD")
    assert [g.sites for g in result.groups if g.sites[0].startswith("east-")] == [
        ["east-0", "east-1"],
        ["east-2"],
    ]
    _git(repo, "commit", "-qam", "sizes")
    _edit(repo, "east-0.yaml", "10.0.2.10", "10.0.2.20")  # a new address of its own
    _edit(repo, "east-1.yaml", "10.0.2.11", "10.0.2.20")  # east-0's: a copy and paste
    result = review([repo / "specs"], "HEAD")
    assert [g.sites for g in result.groups] == [["east-0"], ["east-1"]]
    (east_3,) = [s for s in result.sites if s.site == "east-3"]
    assert result.masker(east_3).mask("address 10.0.2.13, port 10.0.2.130 and x10.0.2.13") == (
        "address <spec.falco.receiver.address>, port 10.0.2.130 and x10.0.2.13"
    )


def test_files_outside_the_spec_dir_and_invalid_specs(repo: Path) -> None:
    """A spec naming a file elsewhere in the repo (a directory allowed with --files-root)
    compiles at base too; a spec broken on one side is reported with its errors, and the
    other sites are still reviewed."""
    (repo / "common").mkdir()
    shutil.move(repo / "specs/files/prod-rules.yaml", repo / "common/prod-rules.yaml")
    _edit(repo, "prod-east.yaml", "files/prod-rules.yaml", "../common/prod-rules.yaml")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "move rules")
    roots = (repo / "common",)
    assert not review([repo / "specs"], "HEAD", roots).differs
    refused = {s.site: s for s in review([repo / "specs"], "HEAD").sites}["prod-east"]
    assert refused.status == "invalid" and any("--files-root" in e for e in refused.errors)

    _edit(repo, "legacy-lab.yaml", 'version: "1.16.0"', "version: 1.16")
    result = review([repo / "specs"], "HEAD", roots)
    sites = {s.site: s for s in result.sites}
    assert sites["legacy-lab"].status == "invalid"
    assert any("quote it" in e and e.startswith("now: ") for e in sites["legacy-lab"].errors)
    assert sites["prod-east"].status == "unchanged"
    cli = runner.invoke(
        app,
        [
            "diff",
            str(repo / "specs"),
            "--base",
            "HEAD",
            "--format",
            "markdown",
            "--files-root",
            str(roots[0]),
        ],
    )
    assert cli.exit_code == 2, "a change that breaks a spec fails the review"
    assert "Specs that do not compile" in cli.stdout


def test_dotfiles_and_removed_spec_files(repo: Path) -> None:
    (repo / "specs" / ".draft.yaml").write_text("kind: nothing\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "draft")
    assert not review([repo / "specs"], "HEAD").differs, "dot files are not specs on either side"
    (repo / "specs" / "legacy-lab.yaml").unlink()
    result = review([repo / "specs" / "legacy-lab.yaml"], "HEAD")
    assert [(s.site, s.status) for s in result.sites] == [("legacy-lab", "removed")]


def test_two_specs_with_one_site_name_are_refused(repo: Path) -> None:
    shutil.copy(repo / "specs" / "prod-east.yaml", repo / "specs" / "copy.yaml")
    result = runner.invoke(app, ["diff", str(repo / "specs"), "--base", "HEAD"])
    assert result.exit_code == 2
    assert "is used by two specs" in result.stderr


def _out(repo: Path, *args: str, stdin: str = "") -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_tree_with_dot_dot_entries_writes_nothing_outside(repo: Path) -> None:
    """git can store a tree entry named `..`; the base export never follows one."""
    blob = _out(repo, "hash-object", "-w", "--stdin", stdin="pwned\n")
    inner = _out(repo, "mktree", stdin=f"100644 blob {blob}\tPWNED.txt\n")
    up = _out(repo, "mktree", stdin=f"040000 tree {inner}\t..\n")
    specs = _out(repo, "rev-parse", "HEAD:specs")
    root = _out(repo, "mktree", stdin=f"040000 tree {up}\t..\n040000 tree {specs}\tspecs\n")
    commit = _out(repo, "commit-tree", root, "-p", "HEAD", "-m", "evil")
    _git(repo, "branch", "evil", commit)
    before = sorted(p for p in repo.parent.rglob("*") if ".git" not in p.parts)
    assert not review([repo / "specs"], "evil").differs
    after = sorted(p for p in repo.parent.rglob("*") if ".git" not in p.parts)
    assert before == after
    import tempfile

    assert not list(Path(tempfile.gettempdir()).glob("PWNED.txt"))


def test_a_spec_missing_now_and_at_base_is_an_error(repo: Path) -> None:
    result = runner.invoke(app, ["diff", str(repo / "specs" / "nope.yaml"), "--base", "HEAD"])
    assert result.exit_code == 2 and "no such file or directory, now or at HEAD" in result.stderr


def test_a_site_moved_to_a_managed_control_plane_is_not_webhook_off(repo: Path) -> None:
    """kubeadm -> EKS drops every node file, the webhook kubeconfig among them; Falco then
    pulls the cloud's log: no webhook-off risk."""
    eks = (repo / "specs/eks-prod.yaml").read_text().replace("name: eks-prod", "name: prod-east")
    (repo / "specs/prod-east.yaml").write_text(eks)
    (repo / "specs/eks-prod.yaml").unlink()
    _git(repo, "commit", "-qam", "prod-east moves to EKS")
    result = review([repo / "specs"], "HEAD~1")
    east = {s.site: s for s in result.sites}["prod-east"]
    files = {f.path: f.status for f in east.files}
    assert files["node/audit-webhook.kubeconfig"] == "removed" and files["plan/plan.yaml"] == "changed"
    assert "webhook-off" not in {r.id for r in east.risks}


def test_the_risk_tally_counts_sites_across_groups() -> None:
    """One risk in two different changes is counted once per site, most sites first."""
    from compiler.diff.formats import risk_tally
    from compiler.diff.review import Risk

    def site(name: str, body: str, *risks: Risk) -> SiteDiff:
        return SiteDiff(name, "changed", [FileDiff("x", "changed", f"+{body}\n")], list(risks))

    nodeport = Risk("introduced", "AUD005", "warning", "f", "m")
    plain = Risk("resolved", "AUD003", "warning", "f", "m")
    sites = [site(f"a{n}", "one", nodeport) for n in range(3)] + [site("b", "two", nodeport, plain)]
    review_ = Review("main", sites)
    assert len(review_.groups) == 2
    assert risk_tally(review_) == "AUD005 introduced in 4 site(s), AUD003 resolved in 1 site(s)"
    assert risk_tally(Review("main", [site("c", "three")])) == ""


def test_a_base_edit_reads_as_one_change_of_the_sites_that_inherit_it(tmp_path: Path) -> None:
    repo = tmp_path / "fleet"
    (repo / "specs").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "ci")
    for folder in ("bases", "files"):
        shutil.copytree(ROOT / "specs" / folder, repo / "specs" / folder)
    shutil.copy(ROOT / "specs" / "prod-east.yaml", repo / "specs")
    branch = (ROOT / "specs" / "branch-office.yaml").read_text()
    for n in range(3):
        (repo / "specs" / f"branch-{n}.yaml").write_text(
            branch.replace("name: branch-office", f"name: branch-{n}")
        )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    base = repo / "specs" / "bases" / "corp-kubeadm.yaml"
    base.write_text(base.read_text().replace("maxAge: 30", "maxAge: 7"))
    result = review([repo / "specs"], "HEAD")
    assert [g.sites for g in result.groups] == [["branch-0", "branch-1", "branch-2"]], (
        "prod-east names no base"
    )
    assert {r.id for r in result.groups[0].change.risks} == {"AUD006"}


def test_sites_are_listed_in_the_order_people_number_them() -> None:
    def site(name: str) -> SiteDiff:
        head = "--- a/x\n+++ b/x\n"
        return SiteDiff(name, "changed", [FileDiff("x", "changed", f"{head}-a {name}\n+b {name}\n")])

    names = ["site-10", "site-2", "site-1", "site-100", "site-9"]
    (group,) = Review("HEAD", [site(n) for n in names]).groups
    assert group.sites == ["site-1", "site-2", "site-9", "site-10", "site-100"]
    assert group.change.site == "site-1", "the one shown is the first listed"
