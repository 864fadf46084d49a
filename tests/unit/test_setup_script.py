"""scripts/lib/common.sh, which setup sources: apt waits for a lock another apt holds instead of
failing at once, and installers' noise goes to the log, not the terminal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK_ERROR = "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)"


def fake_tools(bin_dir: Path, calls: Path, *, lock_failures: int, other_failure: bool = False) -> None:
    """An apt-get that is refused the lock ``lock_failures`` times, then works noisily; a sudo
    that just runs its command (for runs as a normal user)."""
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f"""#!/usr/bin/env bash
echo "$*" >> {calls}
n=$(wc -l < {calls})
if [ "$n" -le {lock_failures} ]; then echo "{LOCK_ERROR}" >&2; exit 100; fi
{"echo 'E: Unable to locate package nosuch' >&2; exit 100" if other_failure else ""}
for i in $(seq 1 50); do echo "Get:$i http://deb.debian.org/debian bookworm/main noise"; done
""")
    (bin_dir / "sudo").write_text('#!/usr/bin/env bash\nexec "$@"\n')
    for tool in ("apt-get", "sudo"):
        (bin_dir / tool).chmod(0o755)


def apt_install(tmp_path: Path, *, lock_failures: int, wait_s: int = 600,
                other_failure: bool = False) -> tuple[subprocess.CompletedProcess[str], list[str], str]:
    calls = tmp_path / "calls"
    calls.touch()
    fake_tools(tmp_path / "bin", calls, lock_failures=lock_failures, other_failure=other_failure)
    log = tmp_path / "setup.log"
    log.touch()
    script = f'. "{ROOT}/scripts/lib/common.sh"; SETUP_LOG="{log}"; apt_install mosquitto'
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
           "MOTUS_APT_LOCK_RETRY_S": "0", "MOTUS_APT_LOCK_WAIT_S": str(wait_s)}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    return result, calls.read_text().splitlines(), log.read_text()


def test_apt_waits_for_a_lock_held_by_another_apt_and_stays_quiet(tmp_path):
    result, calls, log = apt_install(tmp_path, lock_failures=2)
    assert result.returncode == 0, result.stderr
    assert len(calls) == 4  # update refused twice, then update and install
    assert calls[0].endswith("update -q") and calls[2].endswith("update -q")
    assert calls[3].endswith("install -y -q --no-install-recommends mosquitto")
    assert all("DPkg::Lock::Timeout=600" in c for c in calls)  # the dpkg lock is waited for too
    said = result.stdout + result.stderr
    assert said.count("waiting") == 1  # told once, not once per retry
    assert "noise" not in said and LOCK_ERROR not in said
    assert log.count("noise") == 100 and LOCK_ERROR in log  # the detail is kept in the log


def test_a_lock_held_past_the_wait_fails_with_the_log_tail(tmp_path):
    result, calls, _ = apt_install(tmp_path, lock_failures=99, wait_s=0)
    assert result.returncode == 100
    assert len(calls) == 1
    assert LOCK_ERROR in result.stderr


def test_other_apt_failures_are_not_retried(tmp_path):
    result, calls, _ = apt_install(tmp_path, lock_failures=0, other_failure=True)
    assert result.returncode == 100
    assert len(calls) == 1
    assert "Unable to locate package nosuch" in result.stderr
