import { gzipSync } from "node:zlib";

/** One file of an archive. */
export interface ArchiveEntry {
  readonly name: string;
  readonly data: Buffer | string;
}

/**
 * A gzip-compressed POSIX ustar archive of regular files, enough for a support bundle that
 * `tar xzf` opens anywhere. Names are kept under 100 bytes (the ustar name field); longer ones
 * are refused rather than silently cut.
 */
export function tarGz(entries: readonly ArchiveEntry[], mtime = new Date()): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = typeof e.data === "string" ? Buffer.from(e.data, "utf8") : e.data;
    blocks.push(header(e.name, data.length, mtime), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024)); // two zero blocks end the archive
  return gzipSync(Buffer.concat(blocks));
}

function header(name: string, size: number, mtime: Date): Buffer {
  if (Buffer.byteLength(name) >= 100) throw new Error(`tar: entry name longer than 99 bytes: ${name}`);
  const h = Buffer.alloc(512);
  const put = (value: string, offset: number, length: number) => h.write(value, offset, length, "utf8");
  const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, "0") + "\0";
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8); // mode
  put(octal(0, 8), 108, 8); // uid
  put(octal(0, 8), 116, 8); // gid
  put(octal(size, 12), 124, 12);
  put(octal(Math.floor(mtime.getTime() / 1000), 12), 136, 12);
  put("        ", 148, 8); // the checksum is computed with its own field as spaces
  put("0", 156, 1); // a regular file
  put("ustar\0", 257, 6);
  put("00", 263, 2);
  let sum = 0;
  for (const byte of h) sum += byte;
  put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  return h;
}
