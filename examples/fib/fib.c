/* Fibonacci numbers, mod 2^64: a loop, and a recursion that exercises the stack. */
#include "nub.h"

uint64_t fib_iter(uint64_t n) {
  uint64_t a = 0, b = 1;
  while (n--) {
    uint64_t t = a + b;
    a = b;
    b = t;
  }
  return a;
}

uint64_t fib_rec(uint64_t n) {
  return n < 2 ? n : fib_rec(n - 1) + fib_rec(n - 2);
}

NUB_ENDPOINT(1, fib_iter, 1);
NUB_ENDPOINT(2, fib_rec, 1);
