/**
 * `deno task bench` as one call: the conversion report, one part of the measurements (`--only`), all
 * of them printed, or the report a GPU machine should record (`--report`), written as one markdown
 * table. Every section compares peers measured in the same run under the same rules.
 *
 * @module
 */

import { UserError } from "../core/errors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { acquireGpu, describeGpu, type Gpu } from "../backend/gpu.ts";
import { conversionReport } from "./conversion.ts";
import { cpuEncodeSection } from "./cpu_encode.ts";
import { END_TO_END_SIZES, endToEndSection, type EndToEndSizes } from "./end_to_end.ts";
import { kernelSection, otherKernelSections, type OtherKernelSizes } from "./kernels.ts";
import { BENCH_SHAPES, DIFF_BATCH_ROWS, type EncodeShape } from "./matmul.ts";
import { type BenchSection, formatSection, markdownTable } from "./table.ts";
import { FINITE_CHECK_PEER, finiteCheckRows } from "./finite_check.ts";

/** What `deno task bench` was asked, flags already parsed. */
export interface BenchOptions {
  /** Comma-separated {@linkcode BENCH_SHAPES} names, or "all". */
  shapes: string;
  reps: number;
  /** "kernels", "cpu-encode" or "end-to-end"; undefined: all. */
  only?: string;
  /** The conversion report instead (of `checkpoint`, or of the largest F16/BF16 fixture). */
  convert?: boolean;
  checkpoint?: string;
  /** Write the whole measurement set to this markdown file instead (`quick`: at small sizes). */
  report?: string;
  quick?: boolean;
}

/** Where results and progress go: results to stdout, progress to stderr by default. */
export interface BenchOutput {
  result: (line: string) => void;
  progress: (line: string) => void;
}

/** Sizes of one whole measurement set. */
interface ReportSizes {
  shapes: EncodeShape[];
  other: OtherKernelSizes;
  endToEnd: EndToEndSizes;
}

/** The cosine sizes are the sweep's (six prompts a side) and a larger one; the crosscoder pairs two 256-wide models. */
const OTHER_KERNELS: OtherKernelSizes = {
  cosine: [[6, 4096], [256, 4096]],
  crosscoder: { rows: 256, dModel: 256, dict: 16384 },
};

/**
 * What a GPU machine should record (every shape, 96 x 4096 x 131072 included, and the end-to-end
 * set), and the same rows at sizes a software adapter runs in seconds, for tests of the report.
 */
const REPORT_SIZES: Record<"full" | "quick", ReportSizes> = {
  full: { shapes: Object.values(BENCH_SHAPES).flat(), other: OTHER_KERNELS, endToEnd: END_TO_END_SIZES.full },
  quick: {
    shapes: [{ name: "quick", rows: DIFF_BATCH_ROWS, dIn: 256, dSae: 2048 }],
    other: { cosine: [[6, 256]], crosscoder: { rows: 16, dModel: 64, dict: 1024 } },
    endToEnd: END_TO_END_SIZES.quick,
  },
};

/** The shapes named by `--shapes`. */
function selectShapes(names: string): EncodeShape[] {
  const list = names === "all" ? Object.keys(BENCH_SHAPES) : names.split(",");
  return list.flatMap((name) => {
    if (!BENCH_SHAPES[name]) {
      throw new UserError(`unknown --shapes "${name}": use ${Object.keys(BENCH_SHAPES).join(", ")} or all`);
    }
    return BENCH_SHAPES[name];
  });
}

/** The parts of a run: the WebGPU kernels, the CPU encode, the end-to-end tasks, the finite checks' cost. */
type Part = "kernels" | "cpu-encode" | "end-to-end" | "finite-check";

/** What each `--only` measures (kernels brings the CPU encode along); without it, all of them. */
const PARTS: Record<string, Part[]> = {
  kernels: ["kernels", "cpu-encode"],
  "cpu-encode": ["cpu-encode"],
  "end-to-end": ["end-to-end"],
  "finite-check": ["finite-check"],
};

/**
 * The sections of `parts` at `sizes`, printed through `out` as each ends (the kernels first, after a
 * line naming the date and the adapter); the GPU is only asked for when the kernels are measured.
 */
async function measure(sizes: ReportSizes, reps: number, parts: Part[], out: BenchOutput): Promise<BenchSection[]> {
  const sections: BenchSection[] = [];
  const done = (section: BenchSection) => {
    sections.push(section);
    out.result(`\n${formatSection(section)}`);
  };
  if (parts.includes("kernels")) {
    const gpu = await acquireGpu();
    out.result(`${new Date().toISOString().slice(0, 10)}; ${describeGpu(gpu)}`);
    done(await kernelSection(gpu, sizes.shapes, reps, out.progress));
    for (const section of await otherKernelSections(gpu, sizes.other, reps)) done(section);
  }
  if (parts.includes("cpu-encode")) {
    done(await cpuEncodeSection(sizes.shapes.filter((s) => s.rows === DIFF_BATCH_ROWS), reps));
  }
  if (parts.includes("end-to-end")) done(await endToEndSection(reps, sizes.endToEnd));
  if (parts.includes("finite-check")) {
    done({ title: "finite checks", versus: FINITE_CHECK_PEER, rows: await finiteCheckRows(reps) });
  }
  return sections;
}

/** The facts a report is read by: date, adapter, whether it is a fallback, Deno, the machine's cores. */
function reportFacts(gpu: Gpu, options: BenchOptions, seconds: number): string[] {
  const info = gpu.adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const v = Deno.version;
  return [
    `date: ${new Date().toISOString()}`,
    `adapter: ${describeGpu(gpu)}`,
    `isFallbackAdapter: ${info.isFallbackAdapter ?? "not reported"}`,
    `Deno: ${v.deno} (V8 ${v.v8}, TypeScript ${v.typescript}); ${Deno.build.target}`,
    `CPU: ${navigator.hardwareConcurrency} logical cores`,
    `run: deno task bench --report ${options.report}${options.quick ? " --quick" : ""} --reps ${options.reps}, ${
      seconds.toFixed(0)
    } s; figures are medians of the reps after one warm-up, peers timed interleaved`,
  ];
}

/** Runs what `options` ask for, printing through `out`. */
export async function runBench(
  options: BenchOptions,
  out: BenchOutput = { result: console.log, progress: console.error },
): Promise<void> {
  const shapes = selectShapes(options.shapes);
  if (options.quick && !options.report) throw new UserError("--quick sizes a --report: add --report FILE");
  if (options.report && options.only) throw new UserError("--report measures everything: leave out --only");
  if (options.convert || options.checkpoint) {
    for (const line of await conversionReport(options.checkpoint)) out.result(line);
    return;
  }
  if (options.only !== undefined && !Object.hasOwn(PARTS, options.only)) {
    throw new UserError(`unknown --only "${options.only}": use ${Object.keys(PARTS).join(", ")}`);
  }
  const started = performance.now();
  const sizes = options.report ? REPORT_SIZES[options.quick ? "quick" : "full"] : { ...REPORT_SIZES.full, shapes };
  const parts: Part[] = options.only ? PARTS[options.only] : ["kernels", "cpu-encode", "end-to-end", "finite-check"];
  const sections = await measure(sizes, options.reps, parts, out);
  if (!options.report) return;
  const facts = reportFacts(await acquireGpu(), options, (performance.now() - started) / 1000);
  await writeFileAtomic(options.report, markdownTable("model-diff benchmark report", facts, sections));
  out.result(`\nwrote ${options.report}`);
}
