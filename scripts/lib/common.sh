# shellcheck shell=bash
# Shared by the project's scripts (sourced, not run): a quiet log of long installs, and apt
# that waits for another package manager instead of failing at once.
# The caller sets SETUP_LOG (a file) before using run_logged or apt_install.

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Run "$@" with its output appended to $SETUP_LOG; on failure, show the log's tail and fail.
run_logged() {
    local rc=0
    "$@" >>"$SETUP_LOG" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "setup: '$*' failed (exit $rc); the end of $SETUP_LOG:" >&2
        tail -n 30 "$SETUP_LOG" >&2
        return "$rc"
    fi
}

# apt-get with the dpkg frontend lock waited for (apt >= 1.9.11: DPkg::Lock::Timeout); the
# package lists lock of `apt-get update` is not covered by that option, so any lock refusal is
# retried every few seconds until MOTUS_APT_LOCK_WAIT_S (default 600) have passed.
apt_get_waiting() {
    local wait_s="${MOTUS_APT_LOCK_WAIT_S:-600}" start told=false rc mark
    start=$(date +%s)
    while true; do
        mark=$(wc -c <"$SETUP_LOG")
        rc=0
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$wait_s" "$@" \
            >>"$SETUP_LOG" 2>&1 || rc=$?
        [ "$rc" -eq 0 ] && return 0
        if tail -c +"$((mark + 1))" "$SETUP_LOG" | grep -Eq "Could not get lock|Unable to acquire|Unable to lock" \
            && [ $(($(date +%s) - start)) -lt "$wait_s" ]; then
            $told || echo "setup: another apt or dpkg holds its lock; waiting (up to ${wait_s} s)"
            told=true
            sleep "${MOTUS_APT_LOCK_RETRY_S:-5}"
            continue
        fi
        echo "setup: 'apt-get $*' failed (exit $rc); the end of $SETUP_LOG:" >&2
        tail -n 30 "$SETUP_LOG" >&2
        return "$rc"
    done
}

# Install Debian packages (names, or name=version), refreshing the lists first.
apt_install() {
    apt_get_waiting update -q || return
    apt_get_waiting install -y -q --no-install-recommends "$@"
}
