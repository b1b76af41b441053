"""unit_seccomp.py UNIT -- COMMAND...: exec COMMAND under the seccomp filter
that the unit's SystemCallFilter=, SystemCallErrorNumber=EPERM,
RestrictAddressFamilies= and MemoryDenyWriteExecute= ask systemd for
(tests/integration/test_systemd_unit.py).  libseccomp through ctypes; the
system call groups as `systemd-analyze syscall-filter` lists them.  Needs
no_new_privs set already (setpriv --no-new-privs) or CAP_SYS_ADMIN.
"""

import ctypes
import errno
import os
import socket
import subprocess
import sys

SCMP_ACT_ALLOW = 0x7fff0000
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC = 0x2, 0x4


def SCMP_ACT_ERRNO(e):
    return 0x00050000 | (e & 0xffff)


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def group(name, seen=None):
    """the system calls of @name, nested groups expanded"""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    out = subprocess.run(["systemd-analyze", "syscall-filter", "--no-pager", name],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        word = line.strip().split()[0] if line.strip() else ""
        if not word or word.startswith("#"):
            continue
        calls |= group(word, seen) if word.startswith("@") else {word}
    return calls


def settings(path):
    s = {}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            s.setdefault(k, []).append(v)
    return s


def allowed_calls(s):
    allow = set()
    for v in s.get("SystemCallFilter", []):
        words = v.split()
        if words[0].startswith("~"):
            words[0] = words[0][1:]
            for w in words:
                allow -= group(w) if w.startswith("@") else {w}
        else:
            for w in words:
                allow |= group(w) if w.startswith("@") else {w}
    return allow


def main():
    unit, cmd = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
    s = settings(unit)
    assert s.get("SystemCallErrorNumber") == ["EPERM"], "the filter assumes EPERM"
    allow = allowed_calls(s)
    families = [getattr(socket, f) for f in s["RestrictAddressFamilies"][0].split()]
    mdwe = s.get("MemoryDenyWriteExecute") == ["yes"]

    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO(errno.EPERM))

    def rule(name, *cmps):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            return          # not on this architecture
        arr = (ArgCmp * max(1, len(cmps)))(*cmps)
        rc = lib.seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, len(cmps), arr)
        if rc < 0 and rc != -errno.EEXIST:
            sys.exit("seccomp_rule_add %s: %s" % (name, os.strerror(-rc)))

    conditional = {"socket"} | ({"mmap", "mprotect", "pkey_mprotect"} if mdwe else set())
    for name in sorted(allow - conditional):
        rule(name)
    if "socket" in allow:
        for f in families:
            rule("socket", ArgCmp(0, SCMP_CMP_EQ, f, 0))
    wx = PROT_WRITE | PROT_EXEC
    for name in sorted(allow & conditional - {"socket"}):
        for ok in (0, PROT_WRITE, PROT_EXEC):     # prot is argument 2 of each
            rule(name, ArgCmp(2, SCMP_CMP_MASKED_EQ, wx, ok))
    if lib.seccomp_load(ctx) < 0:
        sys.exit("seccomp_load failed (no_new_privs not set?)")
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
