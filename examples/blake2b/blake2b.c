/*
 * BLAKE2b-256 (RFC 7693), unkeyed. Each endpoint returns the first 8 bytes of a
 * digest as a big-endian number.
 */
#include "nub.h"

static const uint64_t IV[8] = {
    0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
    0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
};

static const uint8_t SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

#define OUT_LEN 32

struct blake2b {
  uint64_t h[8];
  uint8_t block[128];
  uint64_t length; /* bytes absorbed so far (messages here stay below 2^64) */
  unsigned fill;   /* bytes in block */
};

static uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

static void compress(struct blake2b *s, int last) {
  uint64_t m[16], v[16];
  for (int i = 0; i < 16; i++) {
    m[i] = 0;
    for (int b = 7; b >= 0; b--) m[i] = m[i] << 8 | s->block[8 * i + b];
  }
  for (int i = 0; i < 8; i++) v[i] = s->h[i], v[i + 8] = IV[i];
  v[12] ^= s->length;
  if (last) v[14] = ~v[14];
  for (int r = 0; r < 12; r++) {
    const uint8_t *p = SIGMA[r];
#define G(a, b, c, d, x, y)                                                                        \
  v[a] += v[b] + (x), v[d] = rotr64(v[d] ^ v[a], 32), v[c] += v[d], v[b] = rotr64(v[b] ^ v[c], 24), \
  v[a] += v[b] + (y), v[d] = rotr64(v[d] ^ v[a], 16), v[c] += v[d], v[b] = rotr64(v[b] ^ v[c], 63)
    G(0, 4, 8, 12, m[p[0]], m[p[1]]);
    G(1, 5, 9, 13, m[p[2]], m[p[3]]);
    G(2, 6, 10, 14, m[p[4]], m[p[5]]);
    G(3, 7, 11, 15, m[p[6]], m[p[7]]);
    G(0, 5, 10, 15, m[p[8]], m[p[9]]);
    G(1, 6, 11, 12, m[p[10]], m[p[11]]);
    G(2, 7, 8, 13, m[p[12]], m[p[13]]);
    G(3, 4, 9, 14, m[p[14]], m[p[15]]);
#undef G
  }
  for (int i = 0; i < 8; i++) s->h[i] ^= v[i] ^ v[i + 8];
}

static void blake2b_init(struct blake2b *s) {
  memcpy(s->h, IV, sizeof IV);
  s->h[0] ^= 0x01010000 ^ OUT_LEN; /* depth 1, fanout 1, no key */
  s->length = 0;
  s->fill = 0;
}

static void blake2b_byte(struct blake2b *s, uint8_t byte) {
  if (s->fill == sizeof s->block) { /* a full block is compressed only once more input follows */
    compress(s, 0);
    s->fill = 0;
  }
  s->block[s->fill++] = byte;
  s->length++;
}

static uint64_t blake2b_final_leading_u64(struct blake2b *s, uint8_t digest[OUT_LEN]) {
  memset(s->block + s->fill, 0, sizeof s->block - s->fill);
  compress(s, 1);
  for (int i = 0; i < OUT_LEN; i++) digest[i] = (uint8_t)(s->h[i / 8] >> (8 * (i % 8)));
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | digest[i];
  return v;
}

/* The digest of n bytes m[i] = (i * 131 + 7) mod 256. */
uint64_t blake2b_pattern(uint64_t n) {
  struct blake2b s;
  uint8_t digest[OUT_LEN];
  blake2b_init(&s);
  for (uint64_t i = 0; i < n; i++) blake2b_byte(&s, (uint8_t)(i * 131 + 7));
  return blake2b_final_leading_u64(&s, digest);
}

/* d = BLAKE2b-256(""), then k times d = BLAKE2b-256(d). */
uint64_t blake2b_chain(uint64_t k) {
  struct blake2b s;
  uint8_t digest[OUT_LEN];
  blake2b_init(&s);
  uint64_t lead = blake2b_final_leading_u64(&s, digest);
  while (k--) {
    blake2b_init(&s);
    for (int i = 0; i < OUT_LEN; i++) blake2b_byte(&s, digest[i]);
    lead = blake2b_final_leading_u64(&s, digest);
  }
  return lead;
}

NUB_ENDPOINT(1, blake2b_pattern, 1);
NUB_ENDPOINT(2, blake2b_chain, 1);
