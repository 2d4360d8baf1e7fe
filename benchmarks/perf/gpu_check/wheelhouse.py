"""The project's pure-Python dependencies as wheels for another machine's Python and platform (a GPU node with
its own torch and no package index), and their unpacking there into one folder for PYTHONPATH (no pip needed):

    make wheels PY_VERSION=3.12 PLATFORM=manylinux_2_28_x86_64        # here: .whl/py3.12-manylinux_2_28_x86_64/
    python -m mocobench.benchmarks.perf.gpu_check.wheelhouse unpack .whl/py3.12-manylinux_2_28_x86_64 /tmp/site
    PYTHONPATH=/tmp/site python -m mocobench.benchmarks.perf.gpu_check  # there, from the repository root

Not carried: torch and torchvision (the node's own, whatever their version) and what they bring (numpy, pillow,
...), which must stay the node's builds; and stdlib backports (`typing`, which cityscapesscripts asks for),
which would shadow the standard library from PYTHONPATH. fvcore and antlr4-python3-runtime exist only as
source archives: their wheels are built here (`pip wheel --no-deps`, pure Python). detectron2 is the index's
sal-detectron2 (upstream's Python code, a cp310-tagged wheel), fetched with the --python-version 3.10 trick of
the install notes; `unpack` extracts every wheel as pip would install it into a --target folder
(`pip install --no-deps --no-index --python-version 3.10 --target DIR` does the same for detectron2).
docs/gpu-check.md has the whole recipe."""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
# the node's own, never carried: torch, torchvision and what they install
NODE_PROVIDES = ("torch", "torchvision", "numpy", "pillow", "typing-extensions", "filelock", "sympy", "mpmath",
                 "networkx", "jinja2", "markupsafe", "fsspec", "triton")
# carried although torch brings it on Python 3.12: setuptools is pinned < 81 for detectron2's pkg_resources
# backports of standard-library modules: on PYTHONPATH they come before the standard library and break it
STDLIB_BACKPORTS = ("typing", "dataclasses", "enum34")
# published as source archives only (pure Python): wheels built here first (iopath 0.1.9 has a wheel)
SDIST_ONLY = ("fvcore", "antlr4-python3-runtime")
DETECTRON2 = "sal-detectron2==0.7.2 --hash=sha256:491af0c7f79bdb2d178e46f6cb16a97c4ac968d45c41ea3f6b6435d59bbee561"
# omegaconf 2.3 (hydra-core, detectron2's configs) pins antlr4-python3-runtime 4.9.*
EXTRA_PINS = {"antlr4-python3-runtime": "antlr4-python3-runtime==4.9.3"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """pyproject.toml's dependencies without what the node provides."""
    import tomllib  # Python >= 3.11 (building the wheels; unpacking needs nothing but the standard library)

    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [d for d in deps if canonical(re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0]) not in NODE_PROVIDES]


def platforms(platform: str) -> list[str]:
    """A manylinux tag and every older glibc tag a node with that glibc also runs (pip takes exact tags only)."""
    m = re.fullmatch(r"manylinux(?:2014|_2_(\d+))_(\w+)", platform)
    if not m:
        return [platform]
    glibc, arch = int(m.group(1) or 17), m.group(2)
    tags = [f"manylinux_2_{v}_{arch}" for v in range(glibc, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    return tags + [f"{legacy[v]}_{arch}" for v in legacy if v <= glibc]


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def build(python_version: str, platform: str, dest: Path) -> dict:
    start = time.perf_counter()
    wheels, work = dest / "wheels", dest / "build"
    if wheels.exists():
        raise SystemExit(f"{dest} exists; remove it first (rm -rf {dest}) to build it again")
    for d in (wheels, work):
        d.mkdir(parents=True, exist_ok=True)
    reqs = requirements()
    pins = {canonical(re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0]): r for r in reqs} | EXTRA_PINS
    # 1. pure-Python wheels of the sdist-only packages, built here (any Python builds them: no compiled code)
    pip("wheel", "--no-deps", "--no-binary", ",".join(SDIST_ONLY), "-w", str(wheels),
        *[pins.get(n, n) for n in SDIST_ONLY])
    # 2. everything else as binary wheels for the node's Python and platform (step 1's wheels found locally)
    tags = [a for p in platforms(platform) for a in ("--platform", p)]
    (work / "requirements.txt").write_text("\n".join(reqs + [EXTRA_PINS["antlr4-python3-runtime"]]) + "\n")
    target = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", *tags]
    pip("download", "-q", *target, "--find-links", str(wheels), "-d", str(wheels), "-r", str(work / "requirements.txt"))
    dropped = []
    for whl in sorted(wheels.glob("*.whl")):
        if canonical(whl.name.split("-")[0]) in NODE_PROVIDES + STDLIB_BACKPORTS:
            dropped.append(whl.name)
            whl.unlink()
    # 3. detectron2: the cp310-tagged pure-Python wheel, fetched as for 3.10
    (work / "detectron2.txt").write_text(DETECTRON2 + "\n")
    pip("download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.10", "--implementation", "cp",
        "--require-hashes", "-d", str(wheels), "-r", str(work / "detectron2.txt"))
    shutil.rmtree(work)
    summary = {"python_version": python_version, "platform": platform, "dest": str(dest),
               "wheels": len(list(wheels.glob("*.whl"))), "wheels_mib": round(size_mib(wheels), 1),
               "dropped": dropped, "seconds": round(time.perf_counter() - start)}
    (dest / "README.txt").write_text(
        f"Made by `make wheels PY_VERSION={python_version} PLATFORM={platform}`: {summary['wheels']} wheels, "
        f"{summary['wheels_mib']} MiB. On the node, from the repository root (docs/gpu-check.md):\n"
        f"  python -m mocobench.benchmarks.perf.gpu_check.wheelhouse unpack .whl/{dest.name} /tmp/mocobench-site\n"
        f"  PYTHONPATH=/tmp/mocobench-site python -m mocobench.benchmarks.perf.gpu_check\n")
    return summary


def unpack(source: Path, site: Path) -> dict:
    """Every wheel of source (a `make wheels` folder or its wheels/) into site, as pip installs into a --target
    folder: the archive's top level, plus its .data/purelib and .data/platlib; scripts, headers and data files
    (console scripts, fonts of matplotlib's sample data) are left out. Only the standard library is used."""
    import zipfile

    wheels = source / "wheels" if (source / "wheels").is_dir() else source
    files = sorted(wheels.glob("*.whl"))
    if not files:
        raise SystemExit(f"no .whl files in {wheels}: run `make wheels PY_VERSION=.. PLATFORM=..` where an index is")
    if site.exists() and any(site.iterdir()):
        raise SystemExit(f"{site} exists and is not empty; remove it or choose another folder")
    site.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for whl in files:
        with zipfile.ZipFile(whl) as z:
            for info in z.infolist():
                parts = info.filename.split("/")
                if parts[0].endswith(".data"):
                    if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                        continue
                    parts = parts[2:]
                if info.is_dir() or not parts or not parts[-1]:
                    continue
                target = site.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    target.chmod(mode | 0o600)
    shutil.rmtree(site / "tools", ignore_errors=True)  # detectron2's wheel ships a top-level `tools` package
    return {"wheels": len(files), "site": str(site), "site_mib": round(size_mib(site), 1),
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mocobench.benchmarks.perf.gpu_check.wheelhouse", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="download / build the wheels for a node (needs a package index)")
    b.add_argument("--python-version", default="3.12", help="the node's Python, e.g. 3.12")
    b.add_argument("--platform", default="manylinux_2_28_x86_64",
                   help="the node's platform tag: manylinux_2_28_x86_64 (glibc 2.28, as torch >= 2.6 needs), "
                        "manylinux2014_x86_64 (glibc 2.17: some pins have no wheel for it), ...")
    b.add_argument("--dest", type=Path, default=None, help="default: .whl/py<V>-<platform>")
    u = sub.add_parser("unpack", help="on the node: wheels -> one folder for PYTHONPATH (standard library only)")
    u.add_argument("source", type=Path, help="the folder `make wheels` wrote (or its wheels/)")
    u.add_argument("site", type=Path, help="the folder to fill (new or empty)")
    args = p.parse_args(argv)
    if args.command == "unpack":
        print(unpack(args.source, args.site))
        return 0
    dest = args.dest or ROOT / ".whl" / f"py{args.python_version}-{args.platform}"
    try:
        summary = build(args.python_version, args.platform, dest)
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"pip failed ({e.returncode}): a pinned dependency may have no wheel for Python "
                         f"{args.python_version} on {args.platform} (pip names it above). A node with torch >= 2.6 "
                         f"has glibc >= 2.28: try PLATFORM=manylinux_2_28_x86_64. Remove {dest} before retrying."
                         ) from None
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
