"""deploy/systemd/*: the guide's units pass systemd's own check and start real commands."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

UNITS = Path(settings.BASE_DIR) / "deploy" / "systemd"


def test_the_units_pass_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("TEAMCHAT_REQUIRE_SERVICES"):
            pytest.fail("no systemd-analyze (Debian's systemd package) to check the units with")
        pytest.skip("no systemd-analyze (Debian's systemd package)")
    venv_python = Path(sys.executable)
    names = []
    for unit in sorted(UNITS.iterdir()):
        text = unit.read_text()
        # The guide's paths, made real on this machine; the rest as written.
        text = text.replace("/srv/teamchat/.venv/bin/python", str(venv_python))
        text = text.replace("/srv/teamchat", str(settings.BASE_DIR))
        text = text.replace("/etc/teamchat/env", str(tmp_path / "env"))
        text = re.sub(r"^(User|Group)=teamchat$", r"\1=root", text, flags=re.M)
        name = unit.name.replace("@.", "@8001.") if "@." in unit.name else unit.name
        (tmp_path / unit.name).write_text(text)
        if name != unit.name:
            (tmp_path / name).symlink_to(tmp_path / unit.name)
        names.append(str(tmp_path / name))
    (tmp_path / "env").write_text("DJANGO_SECRET_KEY=x\n")
    done = subprocess.run(
        [analyze, "verify", "--man=no", *names], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        # The machine's own units and missing dependencies are not ours to judge.
        if str(tmp_path) in line or "teamchat" in line
    ]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def test_each_unit_starts_a_command_that_exists_here():
    for unit in UNITS.glob("*.service"):
        for command in re.findall(r"^ExecStart=\S+ (.+)$", unit.read_text(), re.M):
            words = command.replace("%i", "webhook_worker").split()
            if words[0] == "-m":
                assert words[1] == "teamchat.server", unit.name
            else:
                assert words[0] == "manage.py", unit.name
                out = subprocess.run(
                    [sys.executable, "manage.py", "help", words[1]],
                    cwd=settings.BASE_DIR,
                    capture_output=True,
                    text=True,
                )
                assert out.returncode == 0, (unit.name, words[1], out.stderr)
