"""The package's shape: platforms stay in their folders, the registry is the only list of
them, and the import layers hold (pyproject [tool.importlinter], run by make lint)."""

from __future__ import annotations

import re
from pathlib import Path

from compiler.catalog import rules
from compiler.platforms import PLATFORMS, site_schema

PACKAGE = Path(__file__).resolve().parent.parent / "compiler"
REGISTRY = PACKAGE / "platforms" / "__init__.py"


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_platform_names_appear_only_in_their_folder_and_the_registry() -> None:
    """`grep -rliw NAME compiler/` finds the platform's own folder and the registry only (as a
    word: "aks" is in "breaks")."""
    files = _package_files()
    assert len(files) > 50
    # the audit policy preset "gke" (kubernetes' cluster/gce configure-helper policy, usable
    # on any platform) predates the platform of that name: its two mentions are not about it
    preset = {"gke": {PACKAGE / "data/policies/PROVENANCE.md", PACKAGE / "spec/model.py"}}
    for name in PLATFORMS:
        folder = PACKAGE / "platforms" / name
        pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", re.IGNORECASE)
        strays = [
            str(path.relative_to(PACKAGE))
            for path in files
            if path != REGISTRY
            and not path.is_relative_to(folder)
            and path not in preset.get(name, set())
            and pattern.search(path.read_bytes().decode("utf-8", "replace"))
        ]
        assert strays == [], f"{name} is named outside compiler/platforms/{name}/"


def test_every_platform_folder_is_registered_and_complete() -> None:
    folders = {p.name for p in (PACKAGE / "platforms").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(PLATFORMS)
    for name, platform in PLATFORMS.items():
        folder = PACKAGE / "platforms" / name
        for required in ("__init__.py", "settings.py", "platform.yaml", "lower.py"):
            assert (folder / required).is_file(), f"{name}: {required}"
        assert platform.name == name == platform.data.type
        assert platform.block.model_fields["type"].annotation.__args__ == (name,)  # type: ignore[union-attr]


def test_the_spec_union_and_messages_come_from_the_registry() -> None:
    schema = site_schema().model_json_schema(by_alias=True)
    union = schema["$defs"]["SiteSpec"]["properties"]["platform"]
    assert sorted(union["discriminator"]["mapping"]) == sorted(PLATFORMS)
    assert [ref["$ref"].rsplit("/", 1)[-1] for ref in union["oneOf"]] == [
        p.block.__name__ for p in PLATFORMS.values()
    ]


def test_platform_finding_ids_live_in_their_folder() -> None:
    """A platform's lint rules and their catalog entries sit together, ids never clash."""
    for name, platform in PLATFORMS.items():
        rules_file = PACKAGE / "platforms" / name / "lint-rules.yaml"
        own = set(re.findall(r"^(AUD\d{3}):", rules_file.read_text(), re.M)) if rules_file.exists() else set()
        assert set(platform.lint_checks) <= own, name
        for rule_id in own:
            assert rule_id in rules(), rule_id
