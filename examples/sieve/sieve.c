/* Sieve of Eratosthenes over a zeroed (bss) bitmap: counts and sums the primes below n. */
#include "nub.h"

#define LIMIT (1u << 23) /* largest n accepted; larger n answer 0 */

static uint8_t composite[LIMIT / 8];

static int is_composite(uint64_t i) { return composite[i >> 3] >> (i & 7) & 1; }

static void sieve(uint64_t n) {
  memset(composite, 0, (n + 7) / 8);
  for (uint64_t i = 2; i * i < n; i++) {
    if (is_composite(i)) continue;
    for (uint64_t j = i * i; j < n; j += i) composite[j >> 3] |= (uint8_t)(1u << (j & 7));
  }
}

uint64_t count_primes(uint64_t n) {
  if (n > LIMIT) return 0;
  sieve(n);
  uint64_t count = 0;
  for (uint64_t i = 2; i < n; i++) count += !is_composite(i);
  return count;
}

uint64_t sum_primes(uint64_t n) {
  if (n > LIMIT) return 0;
  sieve(n);
  uint64_t sum = 0;
  for (uint64_t i = 2; i < n; i++) {
    if (!is_composite(i)) sum += i;
  }
  return sum;
}

NUB_ENDPOINT(1, count_primes, 1);
NUB_ENDPOINT(2, sum_primes, 1);
