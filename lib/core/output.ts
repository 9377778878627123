/**
 * Where the core's reports go: a folder of named files. The CLI writes them into a directory on disk,
 * atomically (lib/io/dir_output.ts); a browser page offers them as downloads.
 *
 * @module
 */

/** A folder reports are written into. */
export interface ReportOutput {
  /** How messages name file `name` once written (its path on disk, or its download name). */
  label(name: string): string;
  /** Writes file `name` whole: a reader never sees half of it. */
  write(name: string, data: Uint8Array | string): Promise<void>;
  /** plotly.js's source, inlined into every page so a page opens offline and travels as one file. */
  plotlyJs(): Promise<string>;
}
