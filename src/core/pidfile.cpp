#include "core/pidfile.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>

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
  pid_fd_.reset(::open(pid_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!pid_fd_) throw_errno("create PID file " + pid_file.string());
  // A `conduit stop` probing the file holds a shared lock for an instant; a
  // short blocking wait is fine because the directory lock already excludes
  // a second daemon. A daemon on another data dir with the same PID file fails.
  if (::flock(pid_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) throw_errno("lock " + pid_file.string());
    for (int i = 0; i < 100 && ::flock(pid_fd_.get(), LOCK_EX | LOCK_NB) != 0; ++i) ::usleep(10000);
    if (::flock(pid_fd_.get(), LOCK_EX | LOCK_NB) != 0)
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

std::optional<PidFileInfo> probe_pid_file(const std::filesystem::path& pid_file) {
  PidFileInfo info;
  info.fd.reset(::open(pid_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!info.fd) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("open " + pid_file.string());
  }
  char buffer[64] = {};
  ssize_t n = ::pread(info.fd.get(), buffer, sizeof buffer - 1, 0);
  if (n > 0) info.pid = static_cast<pid_t>(std::strtol(buffer, nullptr, 10));
  if (::flock(info.fd.get(), LOCK_SH | LOCK_NB) == 0) {
    ::flock(info.fd.get(), LOCK_UN);
    info.held = false;
  } else {
    info.held = true;
  }
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
