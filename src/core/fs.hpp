// Small POSIX helpers: an owning fd and durable atomic file replacement, and the
// fault-injection seam every durable write of the core and the file plugins goes through.
#pragma once

#include <fcntl.h>
#include <sys/types.h>
#include <unistd.h>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

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

// The file layer's seam: open, write, fsync and rename of the
// checkpoint and of file_writer's blocks go through these, so tests can make
// any of them fail deterministically. Without an injection they are the
// system calls; with one, a hook returning an errno makes the call fail with it.
enum class FsOp { open, write, fsync, rename };
using FaultHook = std::function<int(FsOp op, const std::filesystem::path& path)>;

// Installs `hook` for its lifetime (tests only; one at a time).
class FaultInjection {
 public:
  explicit FaultInjection(FaultHook hook);
  ~FaultInjection();
  FaultInjection(const FaultInjection&) = delete;
  FaultInjection& operator=(const FaultInjection&) = delete;
};

int fs_open(const std::filesystem::path& path, int flags, mode_t mode = 0);
ssize_t fs_write(int fd, const void* data, size_t size, const std::filesystem::path& path);
int fs_fsync(int fd, const std::filesystem::path& path);
int fs_rename(const std::filesystem::path& from, const std::filesystem::path& to);

// fs_fsync of every target, up to `parallel` at once: a journaling filesystem
// commits concurrent fsyncs together (ext4 here: 64 new 13 KB files synced one
// by one took 90-275 ms, from 8 threads 5-7 ms). Fault injections are seen in
// order, on the calling thread. Returns the index of the first target (in
// order) whose fsync failed, with errno set to its error; targets.size() when
// all succeeded.
struct FsyncTarget {
  int fd;
  std::filesystem::path path;
};
std::size_t fs_fsync_all(const std::vector<FsyncTarget>& targets, std::size_t parallel = 8);

// Writes all of `data` to `fd`, retrying on EINTR and short writes. `path`
// (the file behind fd) is what a fault injection sees.
void write_all(int fd, std::string_view data, const std::string& what,
               const std::filesystem::path& path = {});

// Replaces `path` with `data` so that readers see the old or the new content,
// never a mix, and the new content survives a crash once this returns:
// write a temp file in the same directory, fsync it, rename, fsync the directory.
// `durable = false` skips both fsyncs (benchmarks only).
void replace_file_atomically(const std::filesystem::path& path, std::string_view data,
                             bool durable = true);

// A file conduit reads (conduit.toml, metadata.json, genesis.json, block files,
// a conduit.yml to convert) must be a regular file, and asking must not block:
// open() of a FIFO waits for a writer forever and a device may never end. So
// the open is O_NONBLOCK (and O_CLOEXEC), fstat refuses anything but a regular
// file, and O_NONBLOCK is cleared again for the reads. The open goes through
// fs_open (fault injection sees it).
struct RegularFile {
  UniqueFd fd;         // open on a regular file; empty when refused
  int open_errno = 0;  // open()'s errno (ENOENT: no such file); 0 when it is not a regular file
  std::string error;   // why it was refused: strerror, or "not a regular file (a FIFO)"
  explicit operator bool() const { return static_cast<bool>(fd); }
};
// `devices_too`: a character device (/dev/null, a terminal) is accepted as
// well, for a file conduit only writes (the log-file).
RegularFile open_regular_file(const std::filesystem::path& path, int flags = O_RDONLY,
                              mode_t mode = 0, bool devices_too = false);

// Appends what `fd` holds to `out`, stopping at its end or once more than
// `limit` bytes are read (so a caller tells "too large" without reading an
// endless file to its end). 0, or the errno of a failed read.
int read_at_most(int fd, size_t limit, std::string& out);

// The whole of the regular file `path`, at most `limit` bytes (by default as
// large as a block file may be); throws std::runtime_error naming the path (a
// system_error for an errno) otherwise.
inline constexpr size_t kReadFileLimit = size_t{256} << 20;
std::string read_file(const std::filesystem::path& path, size_t limit = kReadFileLimit);

}  // namespace conduit
