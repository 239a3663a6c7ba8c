"""proxy.yaml: validation with file:line:key, environment overrides, path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config_loader import load_settings
from proxy.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_committed_example_is_valid() -> None:
    """The annotated proxy.yaml in the repository loads."""
    settings = load_settings(REPO / "proxy.yaml", env={})
    assert settings.proxy_host == "proxy.localhost"
    assert settings.proxy_port == 8080
    assert {lib.code for lib in settings.libraries} == {"MAIN", "WEST"}
    assert Path(settings.rules_dir) == REPO / "vendor_rules"


def test_environment_overrides_paths(tmp_path: Path) -> None:
    """CLAMSHELL_DATA_DIR and CLAMSHELL_RULES_DIR override the file's paths."""
    settings = load_settings(
        REPO / "proxy.yaml",
        env={"CLAMSHELL_DATA_DIR": str(tmp_path / "d"), "CLAMSHELL_RULES_DIR": str(tmp_path / "r")},
    )
    assert settings.data_dir == str(tmp_path / "d")
    assert settings.rules_dir == str(tmp_path / "r")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "public_url: http://proxy.localhost:8080\nlisten:\n  prot: 80\n",
            ":3: listen.prot: unknown key",
        ),
        ("public_url: ftp://x\n", ":1: public_url: must be an origin"),
        (
            "libraries:\n  - code: MAIN\n    name: M\n    check_digit: crc\n",
            ":4: libraries[0].check_digit",
        ),
        (
            "libraries:\n  - code: A\n    name: A\n    prefix: '1234'\n    length: 4\n",
            ":2: libraries[0]: prefix '1234' is not shorter",
        ),
        (
            "upstream_overrides:\n  www.a.org: 127.0.0.1\n",
            ":2: upstream_overrides.www.a.org: must be an origin",
        ),
        ("a: [\n", ":2: YAML syntax error"),
    ],
)
def test_problems_name_line_and_key(tmp_path: Path, text: str, expected: str) -> None:
    """Each mistake in proxy.yaml is reported with its line and key path."""
    path = tmp_path / "proxy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    rendered = [str(p) for p in info.value.problems]
    assert any(line.startswith(f"{path}{expected}") for line in rendered), rendered


def test_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    """A missing config names the path, without a traceback."""
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_R12_anchors_in_proxy_yaml_are_refused(tmp_path: Path) -> None:
    """R12: proxy.yaml refuses YAML anchors and aliases too, naming file and line."""
    path = tmp_path / "proxy.yaml"
    path.write_text("libraries: &libs []\nrules_dir: vendor_rules\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert [str(p) for p in info.value.problems] == [
        f"{path}:1: YAML anchors and aliases are not allowed"
    ]


def test_R12_oversized_proxy_yaml_is_refused(tmp_path: Path) -> None:
    """R12: a proxy.yaml over 1 MiB is refused with a message naming it."""
    path = tmp_path / "proxy.yaml"
    path.write_text("#" * (1024 * 1024 + 1) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="file is larger than 1048576 bytes"):
        load_settings(path, env={})
