"""A bad config exits non-zero with a message naming the key, the file and the line."""

import re
import socket
import subprocess

import pytest

from conftest import HOST, firehose_bin, free_ports

pytestmark = pytest.mark.firehose_only


def good_config(tmp_path, ports=None) -> str:
    ports = ports or free_ports(2)
    return "\n".join([
        f"data_dir = '{tmp_path / 'data'}'",
        "",
        "[[listener]]",
        'name = "mqtt"',
        'kind = "mqtt"',
        f'address = "{HOST}:{ports[0]}"',
        "",
        "[[listener]]",
        'name = "ws"',
        'kind = "ws"',
        f'address = "{HOST}:{ports[1]}"',
        "",
        "[limits]",
        "connect_timeout_secs = 2",
        "max_packet_size = 1048576",
        "",
        "[anonymous]",
        "connect = true",
        'subscribe = ["#"]',
        "publish = []",
        "",
    ])


def serve(tmp_path, text: str, name: str = "bad.toml", timeout: float = 15):
    path = tmp_path / name
    path.write_text(text)
    binary = firehose_bin()
    if not binary.exists():
        pytest.fail(f"firehose binary not found at {binary}")
    try:
        r = subprocess.run([str(binary), "serve", "--config", str(path)], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"`firehose serve` with a bad config was still running after {timeout}s "
                    f"(output: {e.stderr!r})")
    return path, r, r.stdout + r.stderr


def line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


def assert_names_line(out: str, path, line: int):
    assert str(path) in out or path.name in out, f"message does not name the file {path}:\n{out}"
    assert re.search(rf"(line {line}\b|:{line}(:\d+)?\b)", out), \
        f"message does not give line {line}:\n{out}"


def test_good_config_is_accepted_by_check_config(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(good_config(tmp_path))
    r = subprocess.run([str(firehose_bin()), "check-config", str(path)], capture_output=True,
                       text=True, timeout=15)
    assert r.returncode == 0, r.stdout + r.stderr


def test_unknown_key_listner_is_named_with_file_and_line(tmp_path):
    text = good_config(tmp_path).replace("[[listener]]\nname = \"ws\"", "[[listner]]\nname = \"ws\"")
    path, r, out = serve(tmp_path, text)
    assert r.returncode != 0, out
    assert "listner" in out, out
    assert_names_line(out, path, line_of(text, "[[listner]]"))


def test_unknown_key_inside_a_table_is_named(tmp_path):
    text = good_config(tmp_path).replace("max_packet_size = 1048576", "max_pakcet_size = 1048576")
    path, r, out = serve(tmp_path, text)
    assert r.returncode != 0, out
    assert "max_pakcet_size" in out, out
    assert_names_line(out, path, line_of(text, "max_pakcet_size"))


def test_wrong_type_for_max_packet_size_is_named_with_file_and_line(tmp_path):
    text = good_config(tmp_path).replace("max_packet_size = 1048576", 'max_packet_size = "one megabyte"')
    path, r, out = serve(tmp_path, text)
    assert r.returncode != 0, out
    assert "max_packet_size" in out, out
    assert_names_line(out, path, line_of(text, "max_packet_size"))


def test_bad_listener_kind_is_named_with_file_and_line(tmp_path):
    text = good_config(tmp_path).replace('kind = "ws"', 'kind = "websocket-ish"')
    path, r, out = serve(tmp_path, text)
    assert r.returncode != 0, out
    assert "websocket-ish" in out or "kind" in out, out
    assert_names_line(out, path, line_of(text, "websocket-ish"))


def test_toml_syntax_error_gives_file_and_line(tmp_path):
    text = good_config(tmp_path).replace("connect = true", "connect = = true")
    path, r, out = serve(tmp_path, text)
    assert r.returncode != 0, out
    assert_names_line(out, path, line_of(text, "connect = = true"))


def test_check_config_reports_the_same_errors(tmp_path):
    text = good_config(tmp_path).replace("[[listener]]\nname = \"ws\"", "[[listner]]\nname = \"ws\"")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    r = subprocess.run([str(firehose_bin()), "check-config", str(path)], capture_output=True,
                       text=True, timeout=15)
    assert r.returncode != 0
    assert "listner" in r.stdout + r.stderr


def test_missing_config_file_is_named(tmp_path):
    path = tmp_path / "does-not-exist.toml"
    r = subprocess.run([str(firehose_bin()), "serve", "--config", str(path)], capture_output=True,
                       text=True, timeout=15, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert str(path) in r.stdout + r.stderr


def test_two_listeners_on_one_port_give_a_clear_error_naming_the_address(tmp_path):
    port = free_ports(1)[0]
    text = good_config(tmp_path, [port, port])
    path, r, out = serve(tmp_path, text)
    assert r.returncode != 0, out
    assert f"{HOST}:{port}" in out, f"the error should name the address {HOST}:{port}:\n{out}"
    assert "panicked" not in out, out


def test_port_in_use_by_another_process_gives_a_clear_error(tmp_path):
    holder = socket.socket()
    holder.bind((HOST, 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        text = good_config(tmp_path, [free_ports(1)[0], port])
        path, r, out = serve(tmp_path, text)
        assert r.returncode != 0, out
        assert f"{HOST}:{port}" in out, out
        assert "panicked" not in out, out
    finally:
        holder.close()


def test_duplicate_listener_names_are_refused(tmp_path):
    text = good_config(tmp_path).replace('name = "ws"', 'name = "mqtt"')
    path, r, out = serve(tmp_path, text)
    assert r.returncode != 0, out
    assert "mqtt" in out and "name" in out, out


def test_hash_password_output_is_an_argon2id_hash(tmp_path):
    r = subprocess.run([str(firehose_bin()), "hash-password"], input="s3cret\n", capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    h = r.stdout.strip()
    assert h.startswith("$argon2id$"), h
    assert "s3cret" not in r.stdout + r.stderr
