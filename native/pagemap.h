// /proc/self/pagemap: which pages of a MAP_PRIVATE file mapping have been copied on
// write (by the process or by KVM on the guest's behalf) and so differ from the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nub {

// Bit i is set when page i of [addr, addr + size) is private to the mapping: present
// and anonymous, or swapped out. Pages still backed by the file are clear.
std::vector<uint8_t> PrivatePages(const void* addr, size_t size);

}  // namespace nub
