/*
 * Sorting: fills an array from a xorshift64 generator, sorts it with a generic
 * quicksort that compares through a function pointer (an indirect call into a
 * function entry), and returns a checksum of the result, or ~0 if it is not sorted.
 */
#include "nub.h"

#define MAX_N (1 << 20)

static uint64_t values[MAX_N];

typedef int (*compare_fn)(uint64_t, uint64_t);

int ascending(uint64_t a, uint64_t b) { return a < b ? -1 : a > b; }
int descending(uint64_t a, uint64_t b) { return a > b ? -1 : a < b; }

static void swap(uint64_t *a, uint64_t *b) {
  uint64_t t = *a;
  *a = *b;
  *b = t;
}

/* Quicksort (median of three, Hoare partition), recursing into the smaller half. */
static void sort(uint64_t *v, uint64_t n, compare_fn cmp) {
  while (n > 16) {
    uint64_t mid = n / 2;
    if (cmp(v[mid], v[0]) < 0) swap(&v[mid], &v[0]);
    if (cmp(v[n - 1], v[0]) < 0) swap(&v[n - 1], &v[0]);
    if (cmp(v[n - 1], v[mid]) < 0) swap(&v[n - 1], &v[mid]);
    uint64_t pivot = v[mid];
    uint64_t i = 0, j = n - 1;
    for (;;) {
      while (cmp(v[i], pivot) < 0) i++;
      while (cmp(pivot, v[j]) < 0) j--;
      if (i >= j) break;
      swap(&v[i++], &v[j--]);
    }
    uint64_t left = j + 1;
    if (left < n - left) {
      sort(v, left, cmp);
      v += left;
      n -= left;
    } else {
      sort(v + left, n - left, cmp);
      n = left;
    }
  }
  for (uint64_t i = 1; i < n; i++) {
    uint64_t x = v[i], j = i;
    for (; j > 0 && cmp(x, v[j - 1]) < 0; j--) v[j] = v[j - 1];
    v[j] = x;
  }
}

/* Sorts n (<= MAX_N) values from the generator seeded with seed (0 becomes 1). */
uint64_t sort_checksum(uint64_t n, uint64_t seed, uint64_t descend) {
  if (n > MAX_N) return 0;
  uint64_t x = seed ? seed : 1;
  for (uint64_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    values[i] = x;
  }
  compare_fn cmp = descend ? descending : ascending;
  sort(values, n, cmp);
  uint64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (i > 0 && cmp(values[i], values[i - 1]) < 0) return ~(uint64_t)0;
    sum += values[i] * (i + 1);
  }
  return sum;
}

NUB_ENDPOINT(1, sort_checksum, 3);
