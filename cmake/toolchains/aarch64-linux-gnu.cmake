# Cross-compiling rnnkit for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu,
# the tests run under qemu-user (scripts/test_aarch64.sh does all of it):
#
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake -DRNNKIT_BUILD_TESTS=ON
#   cmake --build build/aarch64 && ctest --test-dir build/aarch64
#
# RNNKIT_NATIVE_ARCH is OFF by default when cross-compiling (CMakeLists.txt): -march=native
# would describe the machine that builds, not the one that runs. The baseline ARMv8-A
# already has Advanced SIMD (NEON), which Eigen's packets use without any flag.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(RNNKIT_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${RNNKIT_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${RNNKIT_CROSS_TRIPLE}-g++)

# The target's libraries and headers (libc, libstdc++, libgomp) live here in Debian's
# cross packages; programs (python, for cmeel's Eigen) come from the build machine.
set(CMAKE_FIND_ROOT_PATH /usr/${RNNKIT_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
# Packages from both: Eigen is header-only, so the build machine's Eigen3Config.cmake
# (a system package, or cmeel-eigen's prefix from pip) serves the target as well.
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# ctest (and anything else CMake runs of the target's, such as try_run) goes through
# qemu-user, with the cross packages' root as the dynamic loader's prefix.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-${CMAKE_SYSTEM_PROCESSOR};-L;/usr/${RNNKIT_CROSS_TRIPLE})
