#include "core/pidfile.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <limits>

namespace conduit {

InstanceLock::InstanceLock(const std::filesystem::path& data_dir,
                           const std::filesystem::path& pid_file)
    : pid_file_(pid_file) {
  dir_fd_.reset(::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd_) throw_errno("open data directory " + data_dir.string());
  if (::flock(dir_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      throw AlreadyRunning("another conduit is already running on " + data_dir.string());
    throw_errno("lock " + data_dir.string());
  }
  if (pid_file.has_parent_path()) std::filesystem::create_directories(pid_file.parent_path());
  // O_NOFOLLOW: whoever can write the data dir must not make root truncate
  // the target of a symlink planted as conduit.pid.
  RegularFile file = open_regular_file(pid_file, O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
  if (!file && file.open_errno != 0) {
    errno = file.open_errno;
    throw_errno("create PID file " + pid_file.string());
  }
  if (!file) throw std::runtime_error("PID file " + pid_file.string() + ": " + file.error);
  pid_fd_ = std::move(file.fd);
  // A POSIX record lock (not flock, not an OFD lock): F_GETLK reports its
  // holder's PID, which is how `conduit stop` proves the PID in the file is
  // the process holding it. Nothing else in the daemon opens this file (closing
  // any descriptor of it would drop a POSIX lock). A daemon on another data
  // dir with the same PID file fails here.
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (::fcntl(pid_fd_.get(), F_SETLK, &lock) != 0) {
    if (errno != EAGAIN && errno != EACCES) throw_errno("lock " + pid_file.string());
    throw AlreadyRunning("PID file " + pid_file.string() + " is held by another conduit");
  }
  if (::ftruncate(pid_fd_.get(), 0) != 0) throw_errno("truncate " + pid_file.string());
  std::string line = std::to_string(::getpid()) + "\n";
  if (::pwrite(pid_fd_.get(), line.data(), line.size(), 0) != static_cast<ssize_t>(line.size()))
    throw_errno("write " + pid_file.string());
}

InstanceLock::~InstanceLock() {
  if (pid_fd_) ::unlink(pid_file_.c_str());
}

void InstanceLock::release(const StopCause& cause) {
  if (!pid_fd_) return;
  // Line 1: pid, line 2: stop reason token, line 3: detail.
  std::string detail = cause.detail;
  for (auto& c : detail)
    if (c == '\n') c = ' ';
  std::string record = std::to_string(::getpid()) + "\n" + std::string(to_string(cause.reason)) +
                       "\n" + detail + "\n";
  if (::ftruncate(pid_fd_.get(), 0) == 0)
    (void)!::pwrite(pid_fd_.get(), record.data(), record.size(), 0);
  ::unlink(pid_file_.c_str());
  pid_fd_.reset();
  dir_fd_.reset();
}

pid_t lock_holder(int fd) {
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  if (::fcntl(fd, F_GETLK, &lock) != 0 || lock.l_type == F_UNLCK) return 0;
  return lock.l_pid > 0 ? lock.l_pid : 0;
}

std::optional<PidFileInfo> probe_pid_file(const std::filesystem::path& pid_file) {
  PidFileInfo info;
  // O_NOFOLLOW: a symlink planted as the PID file must not lead to another conduit.
  info.fd.reset(
      ::open(pid_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW));
  if (!info.fd) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("open " + pid_file.string());
  }
  char buffer[64] = {};
  ssize_t n = ::pread(info.fd.get(), buffer, sizeof buffer - 1, 0);
  if (n > 0) {
    char* end = nullptr;
    errno = 0;
    long pid = std::strtol(buffer, &end, 10);
    if (errno == 0 && end != buffer && (*end == '\n' || *end == '\0') && pid > 0 &&
        pid <= std::numeric_limits<pid_t>::max())
      info.pid = static_cast<pid_t>(pid);
  }
  info.holder = lock_holder(info.fd.get());
  info.held = info.holder != 0;
  return info;
}

std::optional<StopCause> read_stop_record(const PidFileInfo& info) {
  char buffer[4096] = {};
  ssize_t n = ::pread(info.fd.get(), buffer, sizeof buffer - 1, 0);
  if (n <= 0) return std::nullopt;
  std::string text(buffer, static_cast<size_t>(n));
  auto first = text.find('\n');
  if (first == std::string::npos) return std::nullopt;
  auto second = text.find('\n', first + 1);
  if (second == std::string::npos) return std::nullopt;
  auto reason = parse_stop_reason(text.substr(first + 1, second - first - 1));
  if (!reason) return std::nullopt;
  auto third = text.find('\n', second + 1);
  return StopCause{
      *reason,
      text.substr(second + 1, third == std::string::npos ? std::string::npos : third - second - 1)};
}

}  // namespace conduit
