"""A newcomer's first day: README.md's commands, run as written (ports substituted), their output
compared with what the README shows. A README step that no longer works, or whose shown output
differs from what zkw prints, fails here.

Steps: the first command (it adds the wasm32 target, so the binary has its built-in recipes);
the embedded default (no config: standalone on 2181, data in ./data); the zkCli.sh session; the
Python example; `srvr`; installing every built-in recipe with the table's command.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

import zkharness as h

# README.md's steps run zkw itself; against ZooKeeper there is nothing to walk.
pytestmark = pytest.mark.skipif(h.target() != "zkw", reason="README.md's steps run zkw")

README = h.REPO_ROOT / "README.md"
# Bounds, in seconds.
COMMAND_TIMEOUT_S = 60.0
SERVER_READY_TIMEOUT_S = 30.0
# The port and data directory the README's first command serves on.
DEFAULT_PORT = 2181
# The recipe admin of the README's install commands (`--auth digest:admin:secret`).
ADMIN_AUTH = "digest:admin:secret"


def readme():
    return README.read_text()


def section(title):
    """The text of README's `## title` or `### title` section, up to the next heading."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", readme(), re.S | re.M)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def fenced(text, lang):
    """The fenced code blocks of `lang` in `text`."""
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.S | re.M)


def zkw(*args, env=None):
    return subprocess.run(
        [str(h.zkw_binary()), *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env=env,
    )


def builtin_names_in_the_table():
    """The recipe names of the README's recipes table (`zkw recipe install NAME ...`)."""
    return sorted(re.findall(r"`zkw recipe install ([a-z-]+) --path", section("Recipes")))


def fresh_server(extra_cfg=None):
    """A zkw on a free port that no client has touched yet: ready when `ruok` answers (a
    session would take zxids and change what the README shows)."""
    server = h.Server("zkw", extra_cfg=extra_cfg).start(wait=False)
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if h.four_letter(server.port, "ruok", timeout=1.0) == "imok":
                return server
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"zkw not ready in {SERVER_READY_TIMEOUT_S} s")


def test_the_first_command_adds_the_wasm_target_and_the_binary_has_its_recipes():
    first = fenced(section("Run the server"), "sh")[0]
    assert first.startswith("rustup target add wasm32-unknown-unknown && cargo run")
    version = zkw("version")
    assert version.returncode == 0
    names = builtin_names_in_the_table()
    assert len(names) == 5, names
    assert f"built-in recipes: {', '.join(names)}" in version.stdout.splitlines()
    builtin = zkw("recipe", "builtin")
    assert builtin.returncode == 0, builtin.stderr
    assert builtin.stdout.split() == names


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the server binds: connections of an earlier server in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_the_embedded_default_serves_standalone_on_2181_with_data_in_dot_data(tmp_path):
    assert "serves standalone on port 2181 with data in `./data`" in section("Run the server")
    if not port_is_free(DEFAULT_PORT):
        pytest.skip(f"port {DEFAULT_PORT} is in use on this machine")
    proc = subprocess.Popen(
        [str(h.zkw_binary()), "server", "start-foreground"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
        srvr = ""
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError):
                srvr = h.four_letter(DEFAULT_PORT, "srvr", timeout=1.0)
                if "Mode:" in srvr:
                    break
            time.sleep(0.1)
        assert "Mode: standalone" in srvr
        assert (tmp_path / "data").is_dir()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=COMMAND_TIMEOUT_S)


def zkcli_transcript():
    """(commands, expected lines) of the README's zkCli.sh session: each `[zk: ...] N` prompt's
    command, and the lines shown after it up to `...` (what follows is elided)."""
    block = next(b for b in fenced(section("A first session"), "sh") if "zkCli.sh" in b)
    commands, expected = [], []
    for line in block.splitlines()[1:]:
        if line == "...":
            break
        prompt = re.match(r"\[zk: [^\]]*\] (.*)", line)
        if prompt:
            commands.append(prompt.group(1))
        else:
            expected.append(line)
    return commands, expected


@pytest.mark.skipif(not os.path.exists(h.ZK_CLI), reason="zkCli.sh not installed")
def test_the_zkcli_session_prints_what_the_readme_shows():
    commands, expected = zkcli_transcript()
    assert commands and expected
    server = fresh_server()
    try:
        run = subprocess.run(
            [h.ZK_CLI, "-server", server.hosts],
            input="".join(f"{command}\n" for command in commands) + "quit\n",
            # zkCli.sh prints some answers (`Created /app`) on stderr: keep the order of both.
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    finally:
        server.stop()
    shown = [line.strip() for line in run.stdout.splitlines()]
    position = 0
    for line in expected:
        assert line in shown[position:], f"README shows {line!r}; zkCli printed:\n{run.stdout}"
        position = shown.index(line, position) + 1


def test_the_python_example_runs():
    block = fenced(section("A first session"), "python")[0]
    server = fresh_server()
    try:
        code = block.replace("127.0.0.1:2181", server.hosts)
        run = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr
    assert "holding the lock" in run.stdout
    assert run.stdout.startswith("(b'v1', ZnodeStat(")


def test_srvr_answers_with_the_mode():
    assert "`echo srvr | nc 127.0.0.1 2181` answers with the mode" in readme()
    server = fresh_server()
    try:
        assert "Mode: standalone" in h.four_letter(server.port, "srvr")
    finally:
        server.stop()


def test_every_builtin_recipe_installs_with_the_tables_command():
    from kazoo.security import make_digest_acl_credential

    rows = re.findall(r"`(zkw recipe install [^`]+)`", section("Recipes"))
    assert len(rows) == 5, rows
    user, password = ADMIN_AUTH.removeprefix("digest:").split(":")
    server = fresh_server(
        {"DigestAuthenticationProvider.superDigest": make_digest_acl_credential(user, password)}
    )
    try:
        for row in rows:
            # The table writes `...` for the options of the first row after --path.
            args = row.replace("...", f"--auth {ADMIN_AUTH}").split()[1:]
            installed = zkw(*args, "--server", server.hosts)
            assert installed.returncode == 0, f"{row}: {installed.stderr}"
            assert installed.stdout.startswith(f"installed {args[2]} at "), installed.stdout
        listed = zkw("recipe", "list", "--server", server.hosts)
        assert listed.returncode == 0, listed.stderr
        for name in builtin_names_in_the_table():
            assert name in listed.stdout
    finally:
        server.stop()


# Offsets of examples/three-node/run.sh's ports from BASE_PORT (client, quorum, election,
# admin), each for servers 1-3.
THREE_NODE_PORT_OFFSETS = (0, 707, 1707, 5899)
THREE_NODE_MEMBERS = 3
# How many random base ports to probe before giving up.
BASE_PORT_PROBES = 50


def three_node_base_port():
    """A BASE_PORT whose twelve ports are all free (a probe: run.sh binds them itself)."""
    import random

    for _ in range(BASE_PORT_PROBES):
        base = random.randrange(20000, 50000)
        ports = [
            base + offset + n for offset in THREE_NODE_PORT_OFFSETS for n in range(THREE_NODE_MEMBERS)
        ]
        if all(port_is_free(port) for port in ports):
            return base
    raise AssertionError("no free set of ports for the three-node example")


def test_the_three_node_example_runs_a_binary_on_a_base_port_outside_the_checkout(tmp_path):
    ensemble = section("An ensemble")
    assert "`BASE_PORT=` moves" in ensemble and "`ZKW=` runs a binary" in ensemble
    base = three_node_base_port()
    data = tmp_path / "ensemble"
    env = dict(os.environ, ZKW=str(h.zkw_binary()), BASE_PORT=str(base), DATA_DIR=str(data))
    proc = subprocess.Popen(
        ["bash", str(h.REPO_ROOT / "examples" / "three-node" / "run.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("configs and logs in"):
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=COMMAND_TIMEOUT_S)
    modes = sorted(re.findall(r"Mode: (\w+)", "".join(lines)))
    assert modes == ["follower", "follower", "leader"], "".join(lines)
    for n in range(THREE_NODE_MEMBERS):
        assert f"(client port {base + n})" in lines[n]
        config = (data / str(n + 1) / "zoo.cfg").read_text()
        assert f"admin.serverPort={base + 5899 + n}" in config
    assert not (h.REPO_ROOT / "ensemble-data").exists()
