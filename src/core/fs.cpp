#include "core/fs.hpp"

#include <fcntl.h>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

namespace conduit {
namespace {

std::atomic<bool> faults_enabled{false};
std::mutex faults_mutex;
FaultHook* faults_hook = nullptr;

// 0, or the errno an injected fault makes this call fail with.
int injected(FsOp op, const std::filesystem::path& path) {
  if (!faults_enabled.load(std::memory_order_acquire)) return 0;
  std::lock_guard lock(faults_mutex);
  return faults_hook && *faults_hook ? (*faults_hook)(op, path) : 0;
}

}  // namespace

FaultInjection::FaultInjection(FaultHook hook) {
  std::lock_guard lock(faults_mutex);
  faults_hook = new FaultHook(std::move(hook));
  faults_enabled.store(true, std::memory_order_release);
}

FaultInjection::~FaultInjection() {
  std::lock_guard lock(faults_mutex);
  faults_enabled.store(false, std::memory_order_release);
  delete faults_hook;
  faults_hook = nullptr;
}

int fs_open(const std::filesystem::path& path, int flags, mode_t mode) {
  if (int e = injected(FsOp::open, path)) {
    errno = e;
    return -1;
  }
  return ::open(path.c_str(), flags, mode);
}

ssize_t fs_write(int fd, const void* data, size_t size, const std::filesystem::path& path) {
  if (int e = injected(FsOp::write, path)) {
    errno = e;
    return -1;
  }
  return ::write(fd, data, size);
}

int fs_fsync(int fd, const std::filesystem::path& path) {
  if (int e = injected(FsOp::fsync, path)) {
    errno = e;
    return -1;
  }
  return ::fsync(fd);
}

int fs_rename(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (int e = injected(FsOp::rename, to)) {
    errno = e;
    return -1;
  }
  return ::rename(from.c_str(), to.c_str());
}

void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void write_all(int fd, std::string_view data, const std::string& what,
               const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t n = fs_write(fd, data.data(), data.size(), path);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(what);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void replace_file_atomically(const std::filesystem::path& path, std::string_view data,
                             bool durable) {
  auto dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  auto temp = path;
  temp += ".tmp";
  {
    UniqueFd fd(fs_open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) throw_errno("create " + temp.string());
    try {
      write_all(fd.get(), data, "write " + temp.string(), temp);
      if (durable && fs_fsync(fd.get(), temp) != 0) throw_errno("fsync " + temp.string());
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
  }
  if (fs_rename(temp, path) != 0) {
    int saved = errno;
    ::unlink(temp.c_str());
    errno = saved;
    throw_errno("rename " + temp.string() + " to " + path.string());
  }
  if (durable) {
    UniqueFd dir_fd(fs_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir_fd) throw_errno("open " + dir.string());
    if (fs_fsync(dir_fd.get(), dir) != 0) throw_errno("fsync " + dir.string());
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::system_error(errno, std::generic_category(), "open " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace conduit
