// Small POSIX helpers: an owning fd and durable atomic file replacement.
#pragma once

#include <unistd.h>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace conduit {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

[[noreturn]] void throw_errno(const std::string& what);

// Writes all of `data` to `fd`, retrying on EINTR and short writes.
void write_all(int fd, std::string_view data, const std::string& what);

// Replaces `path` with `data` so that readers see the old or the new content,
// never a mix, and the new content survives a crash once this returns:
// write a temp file in the same directory, fsync it, rename, fsync the directory.
// `durable = false` skips both fsyncs (benchmarks only).
void replace_file_atomically(const std::filesystem::path& path, std::string_view data,
                             bool durable = true);

std::string read_file(const std::filesystem::path& path);

}  // namespace conduit
