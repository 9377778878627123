import { parse } from "csv-parse/sync";
import { assertEquals } from "../assert.ts";
import { changeRatio, diffCsv, type MetricTable, topChanges } from "../../lib/features/diff.ts";

Deno.test("change ratio rule: chat / base, and for base 0: 1 if chat is 0 too, else ±inf", () => {
  // The rule as the README states it, written out case by case (not computed by the product).
  const table: [number, number, number][] = [
    [0, 0, 1],
    [0, 2, Infinity],
    [0, -2, -Infinity],
    [2, 3, 1.5],
    [-2, 3, -1.5],
  ];
  for (const [base, chat, ratio] of table) assertEquals(changeRatio(base, chat), ratio, `(${base}, ${chat})`);
});

Deno.test("the CSV writes the ratio of a feature silent in the base model as inf", () => {
  const table = (values: number[]): MetricTable => ({
    asst: { all_mean: values, active_mean: values, sparsity: values },
  });
  // Feature 0 is silent in both, 1 is born in the chat model, 2 grows by half, 3 goes negative from 0.
  const rows = topChanges(table([0, 0, 2, 0]), table([0, 2, 3, -2]), "all_mean", ["asst"], 4);
  const records: Record<string, string>[] = parse(diffCsv(rows, "all_mean"), { columns: true });
  assertEquals(
    records.map((r) => [r.feature_id, r.all_mean_diff, r.all_mean_ratio]),
    [["1", "2", "inf"], ["2", "1", "1.5"], ["0", "0", "1"], ["3", "-2", "-inf"]],
  );
});
