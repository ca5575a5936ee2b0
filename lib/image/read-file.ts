/**
 * Reading an input file (an image, an ELF) for the tools: only a regular file, and
 * only up to a limit, so `/dev/zero`, a FIFO or a directory cannot make the host read
 * forever or print an internal error.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { NubError, fromSystemError } from '../errors.js';
import { MAX_IMAGE_FILE_BYTES } from '../limits.js';

/** The bytes of the regular file at `path`; 'NotAFile' for anything else, 'FileTooLarge' past `maxBytes`. */
export function readInputFile(path: string, maxBytes = MAX_IMAGE_FILE_BYTES): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw fromSystemError(err, `cannot read ${path}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new NubError('NotAFile', `${path} is not a regular file`, { path });
    if (stat.size > maxBytes) throw new NubError('FileTooLarge', `${path} is ${stat.size} bytes; at most ${maxBytes} are read`, { path });
    // One byte more than the size stated, to notice a file that grows while it is read.
    const buf = new Uint8Array(Math.min(stat.size, maxBytes) + 1);
    let got = 0;
    for (let n; got < buf.length && (n = readSync(fd, buf, got, buf.length - got, null)) > 0;) got += n;
    if (got === buf.length) throw new NubError('FileTooLarge', `${path} grew while it was read`, { path });
    return buf.subarray(0, got);
  } catch (err) {
    throw err instanceof NubError ? err : fromSystemError(err, `cannot read ${path}`);
  } finally {
    closeSync(fd);
  }
}
