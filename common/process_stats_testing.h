// Figures about this process that tests assert on: its thread count and resident memory,
// read from /proc/self. Linux only; -1 when unreadable.
#ifndef PS_COMMON_PROCESS_STATS_TESTING_H_
#define PS_COMMON_PROCESS_STATS_TESTING_H_

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

namespace ps {
namespace testing {

inline int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  }
  return -1;
}

inline int64_t RssBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = -1;
  statm >> size >> resident;
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

}  // namespace testing
}  // namespace ps

#endif  // PS_COMMON_PROCESS_STATS_TESTING_H_
