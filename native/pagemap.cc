#include "pagemap.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>

#include "sys_error.h"

namespace nub {
namespace {

constexpr size_t kPage = 4096;
constexpr uint64_t kPresent = uint64_t{1} << 63;
constexpr uint64_t kSwapped = uint64_t{1} << 62;
constexpr uint64_t kFileOrShared = uint64_t{1} << 61;
constexpr size_t kChunk = 8192;  // entries read per pread (64 KiB)

// Opened once for the process's life; a failed open is not cached.
int PagemapFd() {
  static std::mutex mutex;
  static int fd = -1;
  std::lock_guard<std::mutex> lock(mutex);
  if (fd < 0) {
    fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) ThrowErrno("open", nullptr, "cannot open /proc/self/pagemap to find the pages a guest changed");
  }
  return fd;
}

}  // namespace

std::vector<uint8_t> PrivatePages(const void* addr, size_t size) {
  int fd = PagemapFd();
  size_t pages = size / kPage;
  size_t first = reinterpret_cast<uintptr_t>(addr) / kPage;
  std::vector<uint8_t> bitmap((pages + 7) / 8);
  std::vector<uint64_t> entries(kChunk);
  for (size_t done = 0; done < pages;) {
    size_t want = std::min(kChunk, pages - done);
    ssize_t n = pread(fd, entries.data(), want * sizeof(uint64_t), static_cast<off_t>((first + done) * sizeof(uint64_t)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || n % sizeof(uint64_t) != 0) ThrowErrno("pread", nullptr, "cannot read /proc/self/pagemap");
    size_t got = static_cast<size_t>(n) / sizeof(uint64_t);
    for (size_t i = 0; i < got; i++) {
      uint64_t e = entries[i];
      if (((e & kPresent) && !(e & kFileOrShared)) || (e & kSwapped)) bitmap[(done + i) / 8] |= 1u << ((done + i) % 8);
    }
    done += got;
  }
  return bitmap;
}

}  // namespace nub
