// tsc never deletes what it emitted for a source that is gone: remove such outputs from
// dist/ (a deleted test would still run, a deleted module would still ship).
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

const OUTPUT = /\.(d\.ts|js|js\.map|d\.ts\.map)$/;

/** Deletes every output under `root/dist` whose `.ts` source under `root` no longer exists; returns the paths removed. */
export function pruneDist(root, dist = 'dist') {
  const removed = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const file = path.join(dir, name);
      if (statSync(file).isDirectory()) walk(file);
      else if (OUTPUT.test(name)) {
        const source = path.join(root, path.relative(path.join(root, dist), file)).replace(OUTPUT, '.ts');
        if (!existsSync(source)) {
          rmSync(file);
          removed.push(file);
        }
      }
    }
  };
  for (const top of ['lib', 'test', 'bench']) if (existsSync(path.join(root, dist, top))) walk(path.join(root, dist, top));
  return removed;
}
