#pragma once
// Shared by the libFuzzer targets: the readers under test take paths, so each input is written to a
// file of this process's own in /dev/shm (memory, no disk traffic; /tmp where /dev/shm is absent).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace xp_fuzz {

// A folder of this process, created once and removed when the process ends normally.
inline const std::string& scratch_dir() {
  // Never destroyed: the exit handler that removes the folder runs after static destructors.
  static const std::string* dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    const std::filesystem::path path = base / ("xp_fuzz_" + std::to_string(getpid()));
    std::filesystem::create_directories(path);
    std::atexit([] { std::error_code ignored; std::filesystem::remove_all(*dir, ignored); });
    return new std::string(path.string());
  }();
  return *dir;
}

// Writes `size` bytes to scratch_dir()/name and returns the path.
inline std::string write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file || std::fwrite(data, 1, size, file) != size || std::fclose(file) != 0) {
    std::perror(path.c_str());
    std::abort();  // the harness itself failed: not a finding in the code under test
  }
  return path;
}

}  // namespace xp_fuzz
