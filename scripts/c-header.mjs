// The C emitter of every generated header (gen-abi.mjs, gen-engine-tables.mjs): constant
// groups and struct layouts declared with lib/abi/struct.ts, written or `--check`ed.
import { readFileSync, writeFileSync } from 'node:fs';

const C_TYPE = { u8: 'uint8_t', u16: 'uint16_t', u32: 'uint32_t', u64: 'uint64_t' };
export const hex = (v) => `0x${BigInt(v).toString(16)}`;
const literal = (v) => (typeof v === 'bigint' || v > 0xffffffff ? `${hex(v)}ULL` : `${hex(v)}u`);
const snake = (s) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

/** `#define PREFIX_NAME value` per constant; an array value becomes a brace initializer. */
export function constants(groups) {
  return groups.flatMap((group) => [
    `/* ${group.doc} */`,
    ...Object.entries(group.values).map(([name, value]) =>
      `#define ${group.prefix}_${snake(name)} ${Array.isArray(value) ? `{${value.join(', ')}}` : literal(value)}`),
    '',
  ]);
}

/** Each struct with `_Static_assert`s on its size and every offset, so C cannot lay it out otherwise. */
export function structs(list) {
  return list.flatMap((s) => [
    `/* ${s.doc} */`, `struct ${s.cName} {`,
    ...s.fields.map((f) => `    ${C_TYPE[f.scalar]} ${f.name}${f.isArray ? `[${f.count}]` : ''};`),
    '};',
    `_Static_assert(sizeof(struct ${s.cName}) == ${s.size}, "${s.cName} size");`,
    ...s.fields.map((f) => `_Static_assert(offsetof(struct ${s.cName}, ${f.name}) == ${f.offset}, "${s.cName}.${f.name} offset");`),
    '',
  ]);
}

/**
 * A whole header: `banner` (comment lines), then `macros` (usable from assembly too), then
 * the `types`, if any, behind `#ifndef __ASSEMBLER__`.
 */
export function header({ guard, banner, macros = [], types = [] }) {
  const comment = banner.length === 1 ? [`/* ${banner[0]} */`] : ['/*', ...banner.map((line) => ` *${line ? ` ${line}` : ''}`), ' */'];
  const typed = types.length ? ['#ifndef __ASSEMBLER__', '#include <stdint.h>', '#include <stddef.h>', '', ...types, '#endif /* __ASSEMBLER__ */'] : [];
  return [...comment, `#ifndef ${guard}`, `#define ${guard}`, '', ...macros, ...typed, `#endif /* ${guard} */`, ''].join('\n');
}

/** Writes each `[path, text]`, or with `--check` exits 1 naming every stale one. */
export function writeOrCheck(outputs, regenerate) {
  if (!process.argv.includes('--check')) {
    for (const [path, text] of outputs) writeFileSync(path, text);
    return;
  }
  for (const [path, text] of outputs) {
    let current = '';
    try { current = readFileSync(path, 'utf8'); } catch {}
    if (current !== text) {
      console.error(`${path} is stale: run \`${regenerate}\``);
      process.exitCode = 1;
    }
  }
}
