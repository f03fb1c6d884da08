#include "core/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

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

std::size_t fs_fsync_all(const std::vector<FsyncTarget>& targets, std::size_t parallel) {
  std::vector<int> errors(targets.size(), 0);
  for (std::size_t i = 0; i < targets.size(); ++i)
    errors[i] = injected(FsOp::fsync, targets[i].path);
  std::atomic<std::size_t> next{0};
  auto sync_some = [&] {  // each index is taken, and its error written, by one thread
    for (std::size_t i; (i = next.fetch_add(1)) < targets.size();)
      if (errors[i] == 0 && ::fsync(targets[i].fd) != 0) errors[i] = errno;
  };
  {
    std::vector<std::jthread> helpers;
    try {
      for (std::size_t t = 1; t < std::min(parallel, targets.size()); ++t)
        helpers.emplace_back(sync_some);
    } catch (const std::system_error&) {
      // No more threads: the ones started and this one sync the rest.
    }
    sync_some();
  }  // joined
  for (std::size_t i = 0; i < targets.size(); ++i)
    if (errors[i] != 0) {
      errno = errors[i];
      return i;
    }
  return targets.size();
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

namespace {

std::string file_type(mode_t mode) {
  if (S_ISDIR(mode)) return std::strerror(EISDIR);
  if (S_ISFIFO(mode)) return "not a regular file (a FIFO)";
  if (S_ISSOCK(mode)) return "not a regular file (a socket)";
  if (S_ISCHR(mode)) return "not a regular file (a character device)";
  if (S_ISBLK(mode)) return "not a regular file (a block device)";
  return "not a regular file";
}

}  // namespace

RegularFile open_regular_file(const std::filesystem::path& path, int flags, mode_t mode,
                              bool devices_too) {
  RegularFile file;
  file.fd.reset(fs_open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, mode));
  if (!file.fd) {
    file.open_errno = errno;
    file.error = std::strerror(errno);
    // A FIFO without a reader (for writing) or a socket: ENXIO; say what it is.
    struct stat st {};
    if (file.open_errno == ENXIO && ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      file.error = file_type(st.st_mode);
    return file;
  }
  struct stat st {};
  if (::fstat(file.fd.get(), &st) != 0) {
    file.open_errno = errno;
    file.error = std::strerror(errno);
    file.fd.reset();
    return file;
  }
  if (!S_ISREG(st.st_mode) && !(devices_too && S_ISCHR(st.st_mode))) {
    file.error = file_type(st.st_mode);
    file.fd.reset();
    return file;
  }
  int status = ::fcntl(file.fd.get(), F_GETFL);
  if (status < 0 || ::fcntl(file.fd.get(), F_SETFL, status & ~O_NONBLOCK) != 0) {
    file.open_errno = errno;
    file.error = std::strerror(errno);
    file.fd.reset();
  }
  return file;
}

int read_at_most(int fd, size_t limit, std::string& out) {
  char buffer[65536];
  size_t read = 0;
  while (read <= limit) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
    read += static_cast<size_t>(n);
  }
  return 0;
}

std::string read_file(const std::filesystem::path& path, size_t limit) {
  RegularFile file = open_regular_file(path);
  if (!file) {
    if (file.open_errno != 0)
      throw std::system_error(file.open_errno, std::generic_category(), "open " + path.string());
    throw std::runtime_error(path.string() + ": " + file.error);
  }
  std::string text;
  if (int error = read_at_most(file.fd.get(), limit, text))
    throw std::system_error(error, std::generic_category(), "read " + path.string());
  if (text.size() > limit)
    throw std::runtime_error(path.string() + ": larger than " + std::to_string(limit) + " bytes");
  return text;
}

}  // namespace conduit
