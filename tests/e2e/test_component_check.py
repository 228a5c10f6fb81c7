"""`firehose component check FILE.wasm`: the world a file implements and the
imports it asks for, or a clear reason why it is not a loadable component
(exit non-zero)."""

import re
import subprocess

import pytest

from conftest import REPO, firehose_bin, wasm_component

pytestmark = pytest.mark.firehose_only

# The firehose:bus version of wit/: what the repository's guests are built against.
BUS = re.match(r"package firehose:bus@([0-9.]+);", (REPO / "wit/types.wit").read_text()).group(1)


def check(path) -> subprocess.CompletedProcess:
    return subprocess.run([str(firehose_bin()), "component", "check", str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name,world", [("public-read", "acl-policy"),
                                        ("redact", "transform-policy")])
def test_a_policy_reports_its_world_and_imports(name, world):
    r = check(wasm_component(name))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith(f": world {world} (firehose:bus@{BUS})"), lines[0]
    imports, exports = sections(lines)
    assert f"firehose:bus/config@{BUS}" in imports
    assert not any(i.startswith("wasi:sockets") for i in imports), "a policy asks for no network"
    interface = "acl" if world == "acl-policy" else "transform"
    assert exports == [f"firehose:bus/{interface}@{BUS}"], exports


def sections(lines: list[str]) -> tuple[set[str], list[str]]:
    """The `imports:` and `exports:` lists of `component check`'s output."""
    assert lines[1] == "imports:", lines
    end = lines.index("exports:")
    return {line.strip() for line in lines[2:end]}, [line.strip() for line in lines[end + 1:]]


def test_the_gerrit_source_reports_its_network_imports_and_both_exports():
    r = check(wasm_component("gerrit"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].endswith(f": world source (firehose:bus@{BUS})"), lines[0]
    imports, exports = sections(lines)
    assert f"firehose:bus/publish@{BUS}" in imports
    assert any(i.startswith("wasi:sockets/tcp@") for i in imports), imports
    assert f"firehose:bus/run@{BUS}" in exports
    assert any(e.startswith("wasi:http/incoming-handler@") for e in exports), exports


@pytest.mark.parametrize("content,says", [
    (b"hello\n", "not a WebAssembly file"),
    (b"\0asm\x01\0\0\0", "a core WebAssembly module, not a component"),
])
def test_files_that_are_not_components_are_refused_with_the_reason(tmp_path, content, says):
    path = tmp_path / "bad.wasm"
    path.write_bytes(content)
    r = check(path)
    assert r.returncode != 0
    assert str(path) in r.stderr and says in r.stderr, r.stderr


def test_a_truncated_component_is_refused(tmp_path):
    path = tmp_path / "truncated.wasm"
    path.write_bytes(wasm_component("redact").read_bytes()[:100])
    r = check(path)
    assert r.returncode != 0
    assert "not a valid component" in r.stderr, r.stderr


def test_a_missing_file_is_named(tmp_path):
    r = check(tmp_path / "nope.wasm")
    assert r.returncode != 0
    assert "nope.wasm" in r.stderr, r.stderr
