/** What the LMDB KV store (kv-lmdb.ts, kv-lmdb-env.ts) throws about what it finds on disk. */
import { SynodError } from "../../core/common/errors.js";

/** The meta format this synod writes, and the latest it reads. */
export const META_FORMAT = 6;

/** The store on disk holds something a correct store could not have written. */
export class KvStorageCorruptionError extends SynodError {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super("storage_corrupt", `the KV store in ${path} is corrupt: ${reason}. Remove the directory to rebuild it from the snapshot and the log.`);
    this.name = "KvStorageCorruptionError";
  }
}

/** The store on disk was written by a later synod, in a format this one does not read. */
export class KvStorageFormatError extends SynodError {
  constructor(
    readonly path: string,
    readonly format: number,
  ) {
    super("storage_format", `the KV store in ${path} is in format ${format}, written by a later synod than this one (which reads formats up to ${META_FORMAT}): run that version of synod, or empty the directory to rebuild it from the cluster`);
    this.name = "KvStorageFormatError";
  }
}
