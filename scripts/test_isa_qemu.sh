#!/usr/bin/env bash
# The installed rnnkit package on emulated older x86-64 CPUs: an AVX2-only one (Haswell)
# and an SSE4.2-only one (Nehalem), under qemu-user, which has no AVX-512 and kills the
# process at the first instruction the emulated CPU lacks. With no RNNKIT_ISA set, the
# package must pick the avx2 and the baseline core by itself and pass core tests there.
#
#   scripts/test_isa_qemu.sh [pytest arguments]   (default: the forward and dispatch tests,
#                                                  less those that need PyTorch or a child process)
#
# Needs Debian's qemu-user (installed here when missing, as root) and the Python
# environment with rnnkit and pytest that `python` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-x86_64 >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends qemu-user >/dev/null
fi
python=$(python -c "import sys; print(sys.executable)")
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(tests/test_dispatch.py tests/test_forward.py -k "not torch and not python_m and not every_level and not rnnkit_isa")
start=$(date +%s)
for cpu_level in Haswell:avx2 Nehalem:baseline; do
  cpu=${cpu_level%%:*} level=${cpu_level##*:}
  echo "== qemu-x86_64 -cpu $cpu: expecting the $level core"
  got=$(env -u RNNKIT_ISA qemu-x86_64 -cpu "$cpu" "$python" -c \
        "import rnnkit as rk; f = rk.cpu_features(); print(f['best'], f['chosen'], f['module'])" 2>/dev/null)
  echo "   $got"
  [ "$got" = "$level $level _core_$level" ] || { echo "expected '$level $level _core_$level'"; exit 1; }
  # qemu warns once per CPU feature TCG lacks (tsc-deadline, hle, ...): noise, dropped
  env -u RNNKIT_ISA qemu-x86_64 -cpu "$cpu" "$python" -m pytest -q -p no:cacheprovider "${tests[@]}" \
    2> >(grep -v "TCG doesn't support requested feature" >&2)
done
echo "emulated CPUs passed in $(( $(date +%s) - start )) s"
