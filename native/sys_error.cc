#include "sys_error.h"

#include <sys/ioctl.h>

namespace nub {

long CheckedIoctl(int fd, unsigned long request, const char* name, unsigned long arg) {
  long r;
  do {
    r = ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno("ioctl", name, std::string(name) + " failed");
  return r;
}

}  // namespace nub
