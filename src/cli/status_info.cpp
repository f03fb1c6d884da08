#include "cli/status_info.hpp"

#include <unistd.h>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

namespace conduit::cli {

std::optional<double> process_uptime_seconds(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Field 2 (comm) may hold spaces and parentheses: count fields after the last ')'.
  auto close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long start_ticks = 0;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) start_ticks = std::stoull(field);
  if (start_ticks == 0) return std::nullopt;
  std::ifstream uptime_file("/proc/uptime");
  double uptime = 0;
  if (!(uptime_file >> uptime)) return std::nullopt;
  double started = static_cast<double>(start_ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return uptime > started ? uptime - started : 0.0;
}

std::optional<double> measure_rate(const std::function<std::optional<uint64_t>()>& next_round,
                                   std::chrono::milliseconds interval) {
  auto first = next_round();
  auto started = std::chrono::steady_clock::now();
  if (!first) return std::nullopt;
  std::this_thread::sleep_for(interval);  // a measurement period, not synchronisation
  auto second = next_round();
  double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!second || *second < *first || elapsed <= 0) return std::nullopt;
  return static_cast<double>(*second - *first) / elapsed;
}

std::string human_duration(double seconds) {
  auto total = static_cast<unsigned long long>(seconds);
  unsigned long long d = total / 86400, h = total / 3600 % 24, m = total / 60 % 60, s = total % 60;
  char buffer[64];
  if (d)
    std::snprintf(buffer, sizeof buffer, "%llud %lluh", d, h);
  else if (h)
    std::snprintf(buffer, sizeof buffer, "%lluh %llum", h, m);
  else if (m)
    std::snprintf(buffer, sizeof buffer, "%llum %llus", m, s);
  else
    std::snprintf(buffer, sizeof buffer, "%llus", s);
  return buffer;
}

RuntimeInfo runtime_info(pid_t pid, const std::function<std::optional<uint64_t>()>& next_round) {
  RuntimeInfo info;
  info.uptime_seconds = process_uptime_seconds(pid);
  if (info.uptime_seconds)
    info.rounds_per_second = measure_rate(next_round, std::chrono::seconds(1));
  return info;
}

}  // namespace conduit::cli
