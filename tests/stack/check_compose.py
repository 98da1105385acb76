#!/usr/bin/env python3
"""Cross-checks compose.yaml against the Dockerfile and the repository.

The Compose JSON schema says whether compose.yaml is well formed; this says
whether it fits this repository:

  - every service with `build:` runs a program (its command's or entrypoint's
    first word) that the Dockerfile's final stage copies onto the PATH from a
    build stage whose `cmake --build ... --target` list builds it, and that
    is an executable target of the project's CMake files;
  - services that share an image name share one build;
  - depends_on names existing services, named volumes are declared, bind
    mount sources exist;
  - the apache/kafka image has the version tools/kafka runs natively, the
    apicurio/apicurio-registry image the one tools/schema-registry runs;
  - no secret is written in the file: no environment variable whose name
    says SECRET, PASSWORD or TOKEN has a literal value or a literal default
    (`${VAR:-literal}`); secrets come from files (`*_FILE`) or the caller;
  - with --binaries BUILD_DIR: every shared library those programs need
    (readelf NEEDED, resolved with ldconfig and dpkg) comes from a package the
    final stage installs (libc6 and libgcc-s1 are in every Debian image).

Needs ruamel.yaml (installed with check-jsonschema). Exit 0 when all hold.
"""

import argparse
import os
import re
import shlex
import subprocess
import sys

from ruamel.yaml import YAML

BASE_PACKAGES = {"libc6", "libgcc-s1"}
PATH_DIRS = {"/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin"}

failures = []
passes = []


def check(ok, what):
    (passes if ok else failures).append(what)
    print(("ok:   " if ok else "FAIL: ") + what)
    return ok


def dockerfile_stages(path):
    """[(name, base, [(instruction, args)])] with continuation lines joined."""
    lines, cur = [], ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if cur and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            lines.append(cur + line)
            cur = ""
    if cur:
        lines.append(cur)
    stages = []
    for line in lines:
        parts = line.strip().split(None, 1)
        instr, args = parts[0].upper(), parts[1] if len(parts) > 1 else ""
        if instr == "FROM":
            m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            stages.append((m.group(2) or str(len(stages)), m.group(1), []))
        elif stages:
            stages[-1][2].append((instr, args))
    return stages


def copies(stage):
    """(from_stage, sources, dest) of each COPY with --from in a stage."""
    out = []
    for instr, args in stage[2]:
        if instr != "COPY":
            continue
        words = shlex.split(args)
        opts = [w for w in words if w.startswith("--")]
        rest = [w for w in words if not w.startswith("--")]
        src_stage = next((o.split("=", 1)[1] for o in opts if o.startswith("--from=")), None)
        if len(rest) >= 2:
            out.append((src_stage, rest[:-1], rest[-1]))
    return out


def built_targets(stage):
    targets = set()
    for instr, args in stage[2]:
        if instr != "RUN":
            continue
        for m in re.finditer(r"--target((?:\s+[A-Za-z0-9_.+-]+)+)", args):
            targets.update(m.group(1).split())
    return targets


def apt_packages(stage):
    pkgs = set()
    for instr, args in stage[2]:
        if instr != "RUN":
            continue
        for cmd in re.split(r"&&|;", args):
            words = cmd.split()
            if "apt-get" in words and "install" in words:
                pkgs.update(w for w in words[words.index("install") + 1:] if not w.startswith("-"))
    return pkgs


def cmake_executables(root):
    exes = set()
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith((".", "build"))]
        if "CMakeLists.txt" in files:
            with open(os.path.join(d, "CMakeLists.txt"), encoding="utf-8") as f:
                exes.update(re.findall(r"add_executable\(\s*([A-Za-z0-9_.+-]+)", f.read()))
    return exes


def program_of(svc):
    for key in ("entrypoint", "command"):
        v = svc.get(key)
        if v:
            words = shlex.split(v) if isinstance(v, str) else list(v)
            if words:
                return words[0]
    return None


def needed_packages(binary):
    out = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    libs = re.findall(r"\(NEEDED\).*\[(.+)\]", out)
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    pkgs = {}
    for lib in libs:
        m = re.search(r"^\s*" + re.escape(lib) + r" \(.*\) => (\S+)$", cache, re.M)
        if not m:
            pkgs[lib] = None
            continue
        path = os.path.realpath(m.group(1))
        owner = None
        for p in (m.group(1), path, path.replace("/usr/lib/", "/lib/"), path.replace("/lib/", "/usr/lib/", 1)):
            r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":", 1)[0].strip()
                break
        pkgs[lib] = owner
    return pkgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--compose", default="compose.yaml")
    ap.add_argument("--binaries", help="a build directory with the programs, to check their libraries")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    compose_path = os.path.join(root, args.compose)
    with open(compose_path, encoding="utf-8") as f:
        compose = YAML(typ="safe").load(f)
    services = compose.get("services") or {}
    volumes = set((compose.get("volumes") or {}).keys())
    exes = cmake_executables(root)

    builds = {}
    for name, svc in services.items():
        for dep in (svc.get("depends_on") or {}):
            check(dep in services, f"{name}: depends_on {dep} is a service")
        for v in svc.get("volumes") or []:
            if isinstance(v, str):
                src = v.split(":", 1)[0] if ":" in v else None
                kind = "bind" if src and (src.startswith((".", "/", "~"))) else "volume"
            else:
                src, kind = v.get("source"), v.get("type", "volume")
            if kind == "volume" and src:
                check(src in volumes, f"{name}: volume {src} is declared")
            elif kind == "bind":
                check(os.path.exists(os.path.join(root, src)), f"{name}: bind mount source {src} exists")
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        for var, val in env.items():
            if not re.search(r"SECRET|PASSWORD|TOKEN", var) or var.endswith("_FILE"):
                continue
            literal = isinstance(val, str) and val != "" and (
                not val.startswith("${") or re.search(r":?-[^}]", val))
            check(not literal, f"{name}: {var} has no literal value or default in the file")
        image = svc.get("image") or ""
        if image.startswith("apache/kafka:"):
            with open(os.path.join(root, "tools", "kafka"), encoding="utf-8") as f:
                m = re.search(r"^KAFKA_VERSION=(\S+)", f.read(), re.M)
            check(m is not None and image.split(":", 1)[1] == m.group(1),
                  f"{name}: {image} is the version tools/kafka runs ({m.group(1) if m else '?'})")
        if image.startswith("apicurio/apicurio-registry:"):
            with open(os.path.join(root, "tools", "schema-registry"), encoding="utf-8") as f:
                m = re.search(r"^APICURIO_VERSION=(\S+)", f.read(), re.M)
            check(m is not None and image.split(":", 1)[1] == m.group(1),
                  f"{name}: {image} is the version tools/schema-registry runs ({m.group(1) if m else '?'})")
        if "build" not in svc:
            continue
        b = svc["build"]
        ctx, dockerfile = (b, "Dockerfile") if isinstance(b, str) else (b.get("context", "."), b.get("dockerfile", "Dockerfile"))
        builds.setdefault(image, set()).add((ctx, dockerfile))
        df = os.path.normpath(os.path.join(root, ctx, dockerfile))
        if not check(os.path.isfile(df), f"{name}: {os.path.relpath(df, root)} exists"):
            continue
        stages = dockerfile_stages(df)
        final = stages[-1]
        by_name = {s[0]: s for s in stages}
        prog = program_of(svc)
        if prog is None:
            check(False, f"{name}: has a command or entrypoint naming its program")
            continue
        if not prog.startswith("/") and prog in {"sh", "bash", "/bin/sh"}:
            check(False, f"{name}: runs its program directly, not through a shell")
            continue
        hit = None
        for src_stage, sources, dest in copies(final):
            for s in sources:
                if dest.endswith("/"):
                    installed = dest.rstrip("/") + "/" + os.path.basename(s)
                else:
                    installed = dest
                if os.path.basename(installed) == os.path.basename(prog) and \
                        os.path.dirname(installed) in PATH_DIRS:
                    hit = (src_stage, s, installed)
        if not check(hit is not None, f"{name}: the final stage '{final[0]}' copies {prog} onto the PATH"):
            continue
        src_stage, src, installed = hit
        stage = by_name.get(src_stage)
        check(stage is not None and prog in built_targets(stage),
              f"{name}: stage '{src_stage}' builds the CMake target {prog} ({src})")
        check(prog in exes, f"{name}: {prog} is an add_executable() target of the project")
        if args.binaries:
            # The COPY source is under the build stage's build directory; find
            # the same relative path in the given build directory.
            m = re.search(r"/build/(.+)$", src)
            binary = os.path.join(args.binaries, m.group(1)) if m else None
            if not check(binary is not None and os.path.isfile(binary), f"{name}: built binary {binary} exists"):
                continue
            want = apt_packages(final) | BASE_PACKAGES
            for lib, pkg in sorted(needed_packages(binary).items()):
                check(pkg is not None and pkg in want,
                      f"{name}: {lib} comes from {pkg or '?'}, which the runtime image has")
    for image, bs in builds.items():
        check(len(bs) == 1, f"image {image or '(unnamed)'}: one build for all services that use it")

    print(f"\n{len(passes)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
