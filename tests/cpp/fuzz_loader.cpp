// Loads every file of a folder with rnnkit::Model::load, each in a child process with
// a time and a memory bound, and fails if any child crashes, hangs, goes past the
// memory bound or throws anything but ModelFileError. The files are mutated model
// files (tests/fuzz_files.py writes them); CI runs this built with AddressSanitizer
// and UndefinedBehaviorSanitizer (.ci/run), so a read out of bounds is a crash.
//
//   fuzz_loader FOLDER [SECONDS_PER_FILE] [MEGABYTES_PER_FILE]
//
// The memory bound is RLIMIT_AS in a plain build. Under AddressSanitizer, whose shadow
// memory takes terabytes of address space, it is the sanitizer's own bound on any one
// allocation (max_allocation_size_mb, with allocator_may_return_null so that a larger
// request throws bad_alloc) together with the child's peak resident size.
// Exit status 0 when every file was loaded or refused with ModelFileError.

#include <dirent.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "rnnkit/model.h"

#if defined(__SANITIZE_ADDRESS__)
#define RNNKIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RNNKIT_ASAN 1
#endif
#endif

#ifdef RNNKIT_ASAN
// Read by AddressSanitizer at start-up, before main; ASAN_OPTIONS still overrides it.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1:max_allocation_size_mb=512"; }
#endif

namespace {

// Child exit statuses.
constexpr int kLoaded = 0, kRefused = 1, kBadAlloc = 2, kOtherError = 3;

[[noreturn]] void load_one(const std::string& path, long seconds, long megabytes) {
  alarm(unsigned(seconds));  // SIGALRM's default action ends the child: the parent sees a hang
#ifndef RNNKIT_ASAN
  const rlim_t bytes = rlim_t(megabytes) << 20;
  const rlimit limit{bytes, bytes};
  setrlimit(RLIMIT_AS, &limit);
#else
  (void)megabytes;
#endif
  int status = kLoaded;
  try {
    rnnkit::Model::load(path);
  } catch (const rnnkit::ModelFileError&) {
    status = kRefused;
  } catch (const std::bad_alloc&) {
    status = kBadAlloc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", path.c_str(), e.what());
    status = kOtherError;
  }
  std::fflush(stderr);
  _exit(status);  // no atexit handlers: LeakSanitizer's leak check runs in the parent only
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: %s FOLDER [SECONDS_PER_FILE] [MEGABYTES_PER_FILE]\n", argv[0]);
    return 2;
  }
  const std::string folder = argv[1];
  const long seconds = argc > 2 ? std::atol(argv[2]) : 10;
  const long megabytes = argc > 3 ? std::atol(argv[3]) : 1024;
  std::vector<std::string> paths;
  if (DIR* d = opendir(folder.c_str())) {
    while (const dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") paths.push_back(folder + "/" + name);
    }
    closedir(d);
  } else {
    std::perror(folder.c_str());
    return 2;
  }
  std::sort(paths.begin(), paths.end());

  long loaded = 0, refused = 0, crashed = 0, hung = 0, over_memory = 0, other = 0;
  for (const std::string& path : paths) {
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      return 2;
    }
    if (pid == 0) load_one(path, seconds, megabytes);
    int status = 0;
    rusage usage{};
    if (wait4(pid, &status, 0, &usage) != pid) {
      std::perror("wait4");
      return 2;
    }
    const long peak_mb = usage.ru_maxrss / 1024;  // kilobytes on Linux
    const char* what = nullptr;
    if (WIFSIGNALED(status)) {
      what = WTERMSIG(status) == SIGALRM ? "hung" : "crashed";
      ++(WTERMSIG(status) == SIGALRM ? hung : crashed);
    } else if (WEXITSTATUS(status) == kBadAlloc || peak_mb > megabytes) {
      what = "over the memory bound";
      ++over_memory;
    } else if (WEXITSTATUS(status) == kLoaded) {
      ++loaded;
    } else if (WEXITSTATUS(status) == kRefused) {
      ++refused;
    } else {
      what = WEXITSTATUS(status) == kOtherError ? "threw an error other than ModelFileError" : "crashed";
      ++(WEXITSTATUS(status) == kOtherError ? other : crashed);
    }
    if (what) std::printf("%s: %s (status %d, peak %ld MB)\n", path.c_str(), what, status, peak_mb);
  }
  std::printf("%zu files: %ld loaded, %ld refused, %ld crashed, %ld hung, %ld over the memory bound, "
              "%ld other errors\n",
              paths.size(), loaded, refused, crashed, hung, over_memory, other);
  return crashed || hung || over_memory || other ? 1 : 0;
}
