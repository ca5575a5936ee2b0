#include "pagemap.h"

#include <fcntl.h>
#include <linux/ioctl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "sys_error.h"

namespace nub {
namespace {

constexpr size_t kPage = 4096;

// PAGEMAP_SCAN (Linux 6.7): the kernel walks the range and returns only the runs of pages
// that match, instead of 8 bytes per page. Declared here because older kernel headers
// lack it; kernels that lack it answer ENOTTY (or EINVAL) and we read entries instead.
struct PageRegion {
  uint64_t start, end, categories;
};
struct PmScanArg {
  uint64_t size, flags, start, end, walkEnd, vec, vecLen, maxPages;
  uint64_t categoryInverted, categoryMask, categoryAnyofMask, returnMask;
};
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);
constexpr uint64_t kIsFile = 1 << 2, kIsPresent = 1 << 3, kIsSwapped = 1 << 4;
constexpr size_t kRegions = 256;

// Entries of /proc/self/pagemap read with pread (any kernel).
constexpr uint64_t kPresent = uint64_t{1} << 63;
constexpr uint64_t kSwapped = uint64_t{1} << 62;
constexpr uint64_t kFileOrShared = uint64_t{1} << 61;
constexpr size_t kChunk = 8192;  // entries per pread (64 KiB)

std::atomic<bool> gScanUnsupported{false};

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

void SetRange(std::vector<uint8_t>& bitmap, size_t first, size_t end) {
  for (size_t page = first; page < end; page++) bitmap[page / 8] |= 1u << (page % 8);
}

// Private pages with PAGEMAP_SCAN; false when the kernel does not have it.
bool Scan(int fd, uintptr_t start, size_t size, std::vector<uint8_t>& bitmap) {
  PageRegion regions[kRegions];
  PmScanArg arg{};
  arg.size = sizeof arg;
  arg.start = start;
  arg.end = start + size;
  arg.vec = reinterpret_cast<uintptr_t>(regions);
  arg.vecLen = kRegions;
  arg.categoryInverted = kIsFile;  // match pages that are NOT the file's ...
  arg.categoryMask = kIsFile;
  arg.categoryAnyofMask = kIsPresent | kIsSwapped;  // ... and are present or swapped out
  arg.returnMask = kIsPresent | kIsSwapped;
  while (arg.start < arg.end) {
    long n = ioctl(fd, kPagemapScan, &arg);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == ENOTTY || errno == EINVAL) && arg.start == start) return false;
    if (n < 0) ThrowErrno("ioctl", "PAGEMAP_SCAN", "cannot scan /proc/self/pagemap");
    for (long i = 0; i < n; i++) SetRange(bitmap, (regions[i].start - start) / kPage, (regions[i].end - start) / kPage);
    arg.start = arg.walkEnd;
  }
  return true;
}

void ReadEntries(int fd, uintptr_t start, size_t size, std::vector<uint8_t>& bitmap) {
  size_t pages = size / kPage;
  size_t first = start / kPage;
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
}

}  // namespace

std::vector<uint8_t> PrivatePages(const void* addr, size_t size) {
  int fd = PagemapFd();
  auto start = reinterpret_cast<uintptr_t>(addr);
  std::vector<uint8_t> bitmap((size / kPage + 7) / 8);
  if (!gScanUnsupported.load(std::memory_order_relaxed)) {
    if (Scan(fd, start, size, bitmap)) return bitmap;
    gScanUnsupported.store(true, std::memory_order_relaxed);
  }
  ReadEntries(fd, start, size, bitmap);
  return bitmap;
}

}  // namespace nub
