#!/usr/bin/env python3
"""check-layers.py - the layer rules of the tree, read from the compiled objects.

`make check-layers` runs it after the build (and .ci/run with it); it reads
build/<folder>/*.o with nm(1): the global symbols each folder defines, and
the undefined symbols of each object.  An object of folder A with an
undefined symbol that folder B defines is a use A -> B.  It fails, naming
the object and the symbol, when:

  - the session engine (smtpd/) uses anything but common/ (it knows routes
    and auth only through its own ops tables; maildir/ is the local
    route's business);
  - outbound/, maildir/, dkim/ or common/ use anything but common/;
  - forward/ uses queue/;
  - filter/ (the milters, plugged into the engine as checks/ is) uses a
    route of the mx role (local/, forward/): it judges and edits the
    message through the engine, and keeps a quarantined one through
    queue/ only;
  - two top-level folders use each other, directly or round a longer
    cycle;
  - anything uses chamoisd/, the composition root (which may use all);
  - <db.h>, <sasl/sasl.h>, <ares.h>, <dkim.h>, <spf2/spf.h> or
    <opendmarc/dmarc.h> is included by more or fewer than one source file
    of those folders (each library has one wrapper).

The folders are the top-level directories that hold .c files, except one
with its own Makefile (bench/: programs of their own, not layers); tests/
holds no .c file at its top.  The rules name only the folders above;
any other folder is held to "no cycle" and "nothing uses chamoisd/".

    check-layers.py [--root DIR] [--build DIR]   check a tree (default .)
    check-layers.py --self-test                  the rules on a small tree
                                                 of objects built in a temp dir
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ENGINE = "smtpd"
ROOT = "chamoisd"
LEAVES = ("outbound", "maildir", "dkim", "common")
BASE = "common"
# each library's header has one wrapper (libopendkim's: the verifier,
# checks/dkim_verify.c; the signer uses OpenSSL alone)
ONE_INCLUDER = ("db.h", "sasl/sasl.h", "ares.h", "dkim.h", "spf2/spf.h",
                "opendmarc/dmarc.h")


def layer_folders(root):
    """The top-level folders holding .c files, bench-like ones left out."""
    out = []
    for d in sorted(os.listdir(root)):
        p = os.path.join(root, d)
        if d.startswith(".") or not os.path.isdir(p):
            continue
        if os.path.exists(os.path.join(p, "Makefile")):
            continue
        if any(f.endswith(".c") for f in os.listdir(p)):
            out.append(d)
    return out


def nm(args, objs):
    """(object, symbol, type) of every symbol nm lists for objs."""
    if not objs:
        return
    r = subprocess.run(["nm", "-A", "-P"] + args + objs, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise SystemExit("check-layers: nm: %s" % r.stderr.strip())
    for line in r.stdout.splitlines():
        obj, _, rest = line.partition(": ")
        f = rest.split()
        if len(f) >= 2:
            yield obj, f[0], f[1]


def read_objects(build, folders, root):
    """{folder: [object path]}, {symbol: folder}, [problem].  An object
    whose source is gone (a file moved to another folder) is left out:
    it is a leftover of an older build, not part of the program."""
    objs, defs, problems = {}, {}, []
    for d in folders:
        bd = os.path.join(build, d)
        found = sorted(os.path.join(bd, f) for f in os.listdir(bd)
                       if f.endswith(".o") and os.path.exists(
                           os.path.join(root, d, f[:-2] + ".c"))
                       ) if os.path.isdir(bd) else []
        if not found:
            problems.append("%s/ holds .c files but %s has no objects: "
                            "build first (make)" % (d, bd))
        objs[d] = found
    folder_of = {o: d for d, found in objs.items() for o in found}
    for o, sym, t in nm(["-g", "--defined-only"], sorted(folder_of)):
        if t not in ("U", "w", "v"):
            defs.setdefault(sym, folder_of[o])
    return objs, defs, problems


def uses(objs, defs):
    """[(from folder, object, symbol, to folder)], sorted."""
    folder_of = {o: d for d, found in objs.items() for o in found}
    out = []
    for o, sym, _ in nm(["-u"], sorted(folder_of)):
        d, to = folder_of[o], defs.get(sym)
        if to is not None and to != d:
            out.append((d, o, sym, to))
    return sorted(out)


def allowed(frm, to):
    """None, or why frm may not use to."""
    if to == ROOT:
        return "nothing may use the composition root (%s/)" % ROOT
    if frm == ENGINE and to != BASE:
        return "the engine (%s/) may use only %s/" % (ENGINE, BASE)
    if frm in LEAVES and to != BASE:
        return "%s/ may use only %s/" % (frm, BASE)
    if frm == "forward" and to == "queue":
        return "forward/ may not use queue/"
    if frm == "filter" and to in ("local", "forward"):
        return "filter/ may not use a route (%s/)" % to
    return None


def cycles(edges):
    """The simple cycles of the folder graph, each once, shortest first."""
    nodes = sorted(set(edges) | {t for ts in edges.values() for t in ts})
    found = []

    def walk(start, path, seen):
        for t in sorted(edges.get(path[-1], ())):
            if t == start:
                found.append(list(path))
            elif t not in seen and t > start:
                seen.add(t)
                path.append(t)
                walk(start, path, seen)
                path.pop()
                seen.discard(t)

    for n in nodes:
        walk(n, [n], {n})
    return sorted(found, key=lambda c: (len(c), c))


def includers(root, folders):
    """{header: [file]} over the .c and .h files of the folders."""
    pat = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
    out = {h: [] for h in ONE_INCLUDER}
    for d in folders:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for f in sorted(files):
                if not f.endswith((".c", ".h")):
                    continue
                p = os.path.join(dirpath, f)
                with open(p, errors="replace") as fh:
                    for line in fh:
                        m = pat.match(line)
                        if m and m.group(1) in out:
                            out[m.group(1)].append(os.path.relpath(p, root))
    return out


def check(root, build):
    """The list of failures (empty: the layers hold)."""
    folders = layer_folders(root)
    objs, defs, fails = read_objects(os.path.normpath(build), folders, root)
    use = uses(objs, defs)
    for frm, o, sym, to in use:
        why = allowed(frm, to)
        if why:
            fails.append("%s: %s uses %s from %s/" % (why, o, sym, to))
    edges, example = {}, {}
    for frm, o, sym, to in use:
        edges.setdefault(frm, set()).add(to)
        example.setdefault((frm, to), (o, sym))
    for c in cycles(edges):
        ring = c + [c[0]]
        name = (" <-> ".join(c) if len(c) == 2 else " -> ".join(ring))
        steps = []
        for a, b in zip(ring, ring[1:]):
            o, sym = example[(a, b)]
            steps.append("%s uses %s (%s/)" % (o, sym, b))
        fails.append("cycle %s: %s" % (name, "; ".join(steps)))
    for h, files in includers(root, folders).items():
        if len(files) != 1:
            fails.append("<%s> must be included by exactly one file, is by "
                         "%d: %s" % (h, len(files), " ".join(files) or "none"))
    return fails


def report(fails):
    if not fails:
        print("check-layers: ok")
        return 0
    print("check-layers: FAIL (%d)" % len(fails))
    for f in fails:
        print("  " + f)
    return 1


# ---- self-test -------------------------------------------------------------

# a tree that keeps the rules: root -> routes -> engine -> common
FIXTURE = {
    "common/util.c": "int common_fn(void) { return 1; }\n",
    "common/worker.h": "#include <ares.h>\n",
    "smtpd/engine.c": "int common_fn(void);\n"
                      "int engine_fn(void) { return common_fn(); }\n",
    "maildir/maildir.c": "int common_fn(void);\n"
                         "int maildir_fn(void) { return common_fn(); }\n",
    "outbound/client.c": "int common_fn(void);\n"
                         "int client_fn(void) { return common_fn(); }\n",
    "dkim/signer.c": "int common_fn(void);\n"
                     "int signer_fn(void) { return common_fn(); }\n",
    "checks/checks.c": "int common_fn(void);\n"
                       "int checks_fn(void) { return common_fn(); }\n",
    "checks/dkim_verify.h": "#include <dkim.h>\n",
    "checks/spf.h": "#include <spf2/spf.h>\n",
    "checks/dmarc.h": "#include <opendmarc/dmarc.h>\n",
    "forward/proxy.c": "int engine_fn(void); int client_fn(void);\n"
                       "int route_fn(void) { return engine_fn() + client_fn(); }\n",
    "queue/db.c": "#include <stdio.h>\n/* #include <db.h> in a comment */\n"
                  "int engine_fn(void); int maildir_fn(void); int signer_fn(void);\n"
                  "int queue_fn(void) { return engine_fn() + maildir_fn() + signer_fn(); }\n",
    "queue/db.h": "#include <db.h>\n",
    "submission/sasl.c": "int engine_fn(void); int queue_fn(void);\n"
                         "int auth_fn(void) { return engine_fn() + queue_fn(); }\n",
    "submission/sasl.h": "#  include <sasl/sasl.h>\n",
    "chamoisd/main.c": "int route_fn(void); int queue_fn(void); int auth_fn(void);\n"
                       "int main(void) { return route_fn() + queue_fn() + auth_fn(); }\n",
    "bench/Makefile": "all:\n",
    "bench/tool.c": "int route_fn(void);\nint main(void) { return route_fn(); }\n",
}

# each case: files added to the fixture, and what the failure must name
CASES = [
    ("the engine calls a route",
     {"smtpd/cmd.c": "int route_fn(void);\nint cmd_fn(void) { return route_fn(); }\n"},
     ["the engine (smtpd/) may use only common/", "build/smtpd/cmd.o",
      "route_fn", "cycle forward <-> smtpd"]),
    ("the engine calls maildir/",
     {"smtpd/cmd.c": "int maildir_fn(void);\nint cmd_fn(void) { return maildir_fn(); }\n"},
     ["the engine (smtpd/) may use only common/", "build/smtpd/cmd.o",
      "maildir_fn from maildir/"]),
    ("a leaf uses the engine",
     {"outbound/bad.c": "int engine_fn(void);\nint bad_fn(void) { return engine_fn(); }\n"},
     ["outbound/ may use only common/", "build/outbound/bad.o", "engine_fn"]),
    ("dkim/ uses the queue",
     {"dkim/bad.c": "int queue_fn(void);\nint bad_fn(void) { return queue_fn(); }\n"},
     ["dkim/ may use only common/", "build/dkim/bad.o", "queue_fn",
      "cycle dkim <-> queue"]),
    ("common/ uses a leaf",
     {"common/bad.c": "int maildir_fn(void);\nint bad_fn(void) { return maildir_fn(); }\n"},
     ["common/ may use only common/", "build/common/bad.o", "maildir_fn",
      "cycle common <-> maildir"]),
    ("filter/ uses a route",
     {"filter/bad.c": "int route_fn(void);\nint bad_fn(void) { return route_fn(); }\n"},
     ["filter/ may not use a route (forward/)", "build/filter/bad.o", "route_fn"]),
    ("forward/ uses queue/",
     {"forward/bad.c": "int queue_fn(void);\nint bad_fn(void) { return queue_fn(); }\n"},
     ["forward/ may not use queue/", "build/forward/bad.o", "queue_fn"]),
    ("a cycle of two folders the rules do not name otherwise",
     {"queue/bad.c": "int auth_fn(void);\nint bad_fn(void) { return auth_fn(); }\n"},
     ["cycle queue <-> submission", "build/queue/bad.o uses auth_fn",
      "build/submission/sasl.o uses queue_fn"]),
    ("a cycle of three folders",
     {"queue/bad.c": "int cron_fn(void);\nint bad_fn(void) { return cron_fn(); }\n",
      "cron/cron.c": "int auth_fn(void);\nint cron_fn(void) { return auth_fn(); }\n"},
     ["cycle cron -> submission -> queue -> cron"]),
    ("a data symbol counts as a use",
     {"smtpd/state.c": "int engine_state;\n",
      "maildir/bad.c": "extern int engine_state;\nint bad_fn(void) { return engine_state; }\n"},
     ["maildir/ may use only common/", "build/maildir/bad.o uses engine_state"]),
    ("a module calls the composition root",
     {"chamoisd/idle.c": "int root_idle(void) { return 0; }\n",
      "queue/bad.c": "int root_idle(void);\nint bad_fn(void) { return root_idle(); }\n"},
     ["nothing may use the composition root (chamoisd/)", "build/queue/bad.o",
      "root_idle"]),
    ("a second includer of <db.h>",
     {"queue/other.h": "#include <db.h>\n"},
     ["<db.h> must be included by exactly one file, is by 2", "queue/db.h",
      "queue/other.h"]),
    ("no includer of <ares.h>",
     {"common/worker.h": "/* nothing */\n"},
     ["<ares.h> must be included by exactly one file, is by 0"]),
    ("a folder that was not built",
     {"local/local.c": None},
     ["local/ holds .c files but"]),
]


def build_fixture(top, files, base=None):
    """Write files under top and compile each .c into top/build; a tree
    already built (base) is copied first."""
    cc = os.environ.get("CC", "cc")
    if base:
        shutil.copytree(base, top)
    for rel, text in files.items():
        p = os.path.join(top, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as fh:
            fh.write(text if text is not None else "int unbuilt_fn(void) { return 0; }\n")
    for rel, text in files.items():
        d = rel.split("/")[0]
        if not rel.endswith(".c") or text is None or \
                os.path.exists(os.path.join(top, d, "Makefile")):
            continue
        o = os.path.join(top, "build", rel[:-2] + ".o")
        os.makedirs(os.path.dirname(o), exist_ok=True)
        subprocess.run([cc, "-c", "-o", o, os.path.join(top, rel)], check=True)


def self_test():
    bad = 0
    tmp = tempfile.mkdtemp(prefix="check-layers.")
    try:
        base = os.path.join(tmp, "base")
        build_fixture(base, FIXTURE)
        cases = [("a tree that keeps the rules", {}, None)] + CASES
        for i, (label, extra, want) in enumerate(cases):
            top = os.path.join(tmp, str(i))
            build_fixture(top, extra, base)
            fails = check(top, os.path.join(top, "build"))
            text = "\n".join(f.replace(top + "/", "") for f in fails)
            if want is None:
                ok = not fails
            else:
                ok = bool(fails) and all(w in text for w in want)
            print("%s %s" % ("ok  " if ok else "FAIL", label))
            if not ok:
                bad += 1
                print("     wanted: %s" % (want or "no failure"))
                print("     got:    %s" % (text.replace("\n", "\n             ")
                                           or "no failure"))
    finally:
        shutil.rmtree(tmp)
    print("check-layers self-test: %s (%d cases)" %
          ("FAIL" if bad else "ok", len(CASES) + 1))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".")
    ap.add_argument("--build", default=None)
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    return report(check(a.root, a.build or os.path.join(a.root, "build")))


if __name__ == "__main__":
    sys.exit(main())
