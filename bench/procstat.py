"""procstat.py - what a server costs, read from /proc (Linux only).

Every function takes one pid or a list of pids and counts each pid's whole
process tree (the pid and all its descendants, once each), so a server that
forks workers (Postfix's master, OpenSMTPD's privilege-separated processes)
is measured as a whole. A process that exits while being read is skipped.

    descendants(pid)   -> [pid, child, grandchild, ...]
    tree(pids)         -> the union of descendants() of each
    pss_kib(pids)      -> proportional set size (smaps_rollup Pss), KiB
    rss_kib(pids)      -> resident set size (VmRSS), KiB
    hwm_kib(pids)      -> peak resident set size (VmHWM), KiB, per process
    cpu_ticks(pids)    -> utime+stime+cutime+cstime, in clock ticks
    cpu_seconds(pids)  -> the same in seconds (ticks / SC_CLK_TCK)

PSS needs the right to read /proc/PID/smaps_rollup (root, or the same user).
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    # the name is in parentheses and may hold spaces or parentheses
    return data[data.rindex(b")") + 2:].split()


def _parents():
    """{pid: ppid} of every process now."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None:
            parents[int(name)] = int(fields[1])
    return parents


def descendants(pid):
    """PID and every process below it, PID first."""
    children = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    out, todo = [], [int(pid)]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree(pids):
    """The union of the process trees of PIDS (an int or an iterable)."""
    if isinstance(pids, int):
        pids = [pids]
    seen = []
    for pid in pids:
        for p in descendants(pid):
            if p not in seen:
                seen.append(p)
    return seen


def _field_kib(path, key):
    """The "KEY: N kB" value in a /proc file, or None."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _sum(pids, path, key):
    total = 0
    for p in tree(pids):
        v = _field_kib(path % p, key)
        if v is not None:
            total += v
    return total


def pss_kib(pids):
    """Proportional set size of the trees, KiB: shared pages are split
    between the processes that map them, so the sum is what the trees
    cost together."""
    return _sum(pids, "/proc/%d/smaps_rollup", "Pss")


def rss_kib(pids):
    """Resident set size summed over the trees, KiB (shared pages counted
    once a process)."""
    return _sum(pids, "/proc/%d/status", "VmRSS")


def hwm_kib(pids):
    """Peak resident set size summed over the trees' live processes, KiB
    (each process's own peak; they need not have peaked together)."""
    return _sum(pids, "/proc/%d/status", "VmHWM")


def cpu_ticks(pids):
    """utime+stime+cutime+cstime summed over the trees, in clock ticks:
    the CPU of the live processes and of the children they have reaped.
    Take it before and after a run and subtract."""
    total = 0
    for p in tree(pids):
        fields = _stat_fields(p)
        if fields is not None:
            # utime stime cutime cstime are fields 14-17 of stat(5); the
            # list starts at field 3
            total += sum(int(x) for x in fields[11:15])
    return total


def cpu_seconds(pids):
    """cpu_ticks() in seconds."""
    return cpu_ticks(pids) / CLK_TCK


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 2:
        sys.exit("usage: procstat.py PID...")
    roots = [int(a) for a in sys.argv[1:]]
    print("pids=%s pss_kib=%d rss_kib=%d hwm_kib=%d cpu_ticks=%d" % (
        ",".join(str(p) for p in tree(roots)), pss_kib(roots),
        rss_kib(roots), hwm_kib(roots), cpu_ticks(roots)))
