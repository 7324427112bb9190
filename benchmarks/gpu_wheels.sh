#!/usr/bin/env bash
# Download the Python 3.12 wheels that the GPU machine's image lacks into .whl/ (git-ignored), for
# benchmarks/gpu_check.py to install there (docs/gpu_check.md). Run here, from anywhere:
#
#     bash benchmarks/gpu_wheels.sh [PIP]        # PIP: a python with pip (default python3)
#
# The image (/work/.library/device/KINDS.md, "Python packages already there") holds torch, numpy,
# pandas, xarray, scipy, scikit-learn, matplotlib, h5py, tensorstore, fsspec, click, tqdm, pyyaml,
# cloudpickle, toolz, msgpack, psutil, jinja2, sortedcontainers, requests, packaging,
# typing-extensions, pytest and hypothesis, but none of epitensor's zarr / dask / distributed /
# pooch / pyBigWig / pybigtools stack. The pins are the versions of the project's venv (what the tests
# pass with here); one version each (two stop the whole install there). After downloading, every
# wheel's Requires-Dist (extras and python < 3.12 markers left out) is checked to be either in this
# set or in the image, and the total size is printed (it travels with the data, 64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${1:-python3}
WHEELS=(
  zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0   # zarr 3
  dask==2026.8.0 partd==1.4.2 locket==1.0.0                                # dask[array]
  distributed==2026.8.0 tblib==3.2.2 tornado==6.6.1 zict==3.0.0            # distributed
  pooch==1.9.0 platformdirs==4.14.9                                        # pooch
  pybigtools==0.3.0 pyBigWig==0.3.29                                       # epitensor's bigWig readers
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64 manylinux_2_24_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64; do
  PLATFORMS+=(--platform "$p")
done
mkdir -p .whl
rm -f .whl/*.whl
for w in "${WHEELS[@]}"; do
  "$PIP" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "$w"
done
"$PIP" - <<'PY'
import re, zipfile
from pathlib import Path

image = """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cycler cython
filelock fonttools fsspec h5py hypothesis idna iniconfig jinja2 joblib kiwisolver markupsafe matplotlib
msgpack numpy packaging pandas pillow pip pluggy psutil pygments pyparsing pytest python-dateutil pyyaml
requests scikit-learn scipy setuptools six sortedcontainers tensorstore threadpoolctl toolz torch tqdm
typing-extensions urllib3 wheel xarray zipp""".split()
norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()
wheels = sorted(Path(".whl").glob("*.whl"))
names = {norm(w.name.split("-")[0]) for w in wheels}
have = names | {norm(n) for n in image}
missing, total = [], 0
for w in wheels:
    total += w.stat().st_size
    meta = next(n for n in zipfile.ZipFile(w).namelist() if n.endswith(".dist-info/METADATA"))
    for line in zipfile.ZipFile(w).read(meta).decode().splitlines():
        if not line.startswith("Requires-Dist:") or "extra ==" in line or 'python_version < "3.12"' in line:
            continue
        req = norm(re.match(r"Requires-Dist:\s*([A-Za-z0-9_.\-]+)", line).group(1))
        if req not in have:
            missing.append(f"{w.name}: {line}")
    print(f"{w.stat().st_size / 2**20:7.2f} MiB  {w.name}")
print(f"{len(wheels)} wheels, {total / 2**20:.2f} MiB in all")
if len(names) != len(wheels):
    raise SystemExit("two versions of one package in .whl/: the install there would stop")
if missing:
    raise SystemExit("requirements neither carried nor in the image:\n" + "\n".join(missing))
PY
