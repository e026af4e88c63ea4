// Compares the server scenarios of two runs of the MCP conformance suite
// (its --output-dir trees: one server-<scenario>-<timestamp>/checks.json per
// scenario) and prints a table. Used by scripts/conformance.sh.
//
//   node compare.mjs --baseline DIR [--gateway DIR] [--expect a,b,c] [--json FILE]
//
// A scenario's status is "fail" when a check FAILED (or it has no results),
// "warn" when a check only WARNED, else "pass": the suite's own rule for
// --expected-failures counts a warning as a failure too. A regression is a
// scenario that passes on the baseline but not through the gateway, or
// warns on the baseline and fails through it. Exit 1 when there is one.

import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i];
    if (!key.startsWith("--") || i + 1 >= argv.length) {
      throw new Error(`bad argument ${key}`);
    }
    out[key.slice(2)] = argv[i + 1];
  }
  return out;
}

const dirPattern = /^server-(.+)-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)$/;

// load returns scenario -> {status, passed, failed, warnings, message}; the
// latest directory wins when a scenario ran twice.
function load(root) {
  const byScenario = new Map();
  if (!root || !existsSync(root)) return byScenario;
  const dirs = readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  for (const name of dirs) {
    const m = dirPattern.exec(name);
    if (!m) continue;
    const file = join(root, name, "checks.json");
    let checks;
    try {
      checks = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      byScenario.set(m[1], {
        status: "fail",
        passed: 0,
        failed: 1,
        warnings: 0,
        message: `no readable checks.json: ${err.message}`,
      });
      continue;
    }
    byScenario.set(m[1], summarize(checks));
  }
  return byScenario;
}

function summarize(checks) {
  const count = (s) => checks.filter((c) => c.status === s).length;
  const failed = count("FAILURE");
  const warnings = count("WARNING");
  const first = checks.find((c) => c.status === "FAILURE") ?? checks.find((c) => c.status === "WARNING");
  return {
    status: failed > 0 ? "fail" : warnings > 0 ? "warn" : "pass",
    passed: count("SUCCESS"),
    failed,
    warnings,
    message: first ? `${first.id}: ${first.errorMessage ?? first.description ?? ""}`.trim() : "",
  };
}

function cell(r) {
  if (!r) return "missing";
  const parts = [`${r.passed} ok`];
  if (r.failed) parts.push(`${r.failed} failed`);
  if (r.warnings) parts.push(`${r.warnings} warn`);
  return `${r.status} (${parts.join(", ")})`;
}

const rank = { pass: 0, warn: 1, fail: 2, missing: 2 };

function isRegression(base, gw) {
  if (!base) return false;
  const g = gw ? gw.status : "missing";
  return rank[g] > rank[base.status];
}

const args = parseArgs(process.argv.slice(2));
const baseline = load(args.baseline);
const gateway = args.gateway ? load(args.gateway) : null;
const expected = (args.expect ?? "")
  .split(/[\s,]+/)
  .filter(Boolean);

const names = [...new Set([...expected, ...baseline.keys(), ...(gateway ? gateway.keys() : [])])];
const rows = names.map((scenario) => {
  const b = baseline.get(scenario);
  const g = gateway ? gateway.get(scenario) : undefined;
  return {
    scenario,
    baseline: b ?? null,
    gateway: gateway ? (g ?? null) : undefined,
    regression: gateway ? isRegression(b, g) : false,
  };
});

const headers = gateway ? ["scenario", "baseline", "gateway", ""] : ["scenario", "baseline"];
const table = rows.map((r) => {
  const line = [r.scenario, cell(r.baseline)];
  if (gateway) line.push(cell(r.gateway), r.regression ? "REGRESSION" : "");
  return line;
});
const widths = headers.map((h, i) => Math.max(h.length, ...table.map((l) => l[i].length)));
const fmt = (l) => l.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
console.log(fmt(headers));
console.log(fmt(widths.map((w) => "-".repeat(w))));
for (const l of table) console.log(fmt(l));

const tally = (m) => {
  const t = { pass: 0, warn: 0, fail: 0 };
  for (const r of m.values()) t[r.status]++;
  return `${t.pass} pass, ${t.warn} warn, ${t.fail} fail`;
};
console.log("");
console.log(`baseline: ${baseline.size} scenarios: ${tally(baseline)}`);
if (gateway) console.log(`gateway:  ${gateway.size} scenarios: ${tally(gateway)}`);

const missingBaseline = expected.filter((s) => !baseline.has(s));
if (missingBaseline.length) {
  console.log(`\nno baseline result for: ${missingBaseline.join(", ")}`);
}

const notes = rows.filter((r) => r.baseline?.status !== "pass" && r.baseline?.message);
if (notes.length) {
  console.log("\nbaseline, not passing:");
  for (const r of notes) console.log(`  ${r.scenario}: ${r.baseline.message}`);
}

const regressions = rows.filter((r) => r.regression);
if (gateway && regressions.length) {
  console.log("\npassed on the baseline but not through the gateway:");
  for (const r of regressions) {
    const why = r.gateway ? r.gateway.message : "no result (the scenario did not run or crashed)";
    console.log(`  ${r.scenario}: ${cell(r.gateway)}: ${why}`);
  }
}

if (args.json) {
  writeFileSync(args.json, JSON.stringify({ rows, regressions: regressions.map((r) => r.scenario) }, null, 2) + "\n");
}

if (gateway) {
  console.log(
    regressions.length
      ? `\nFAIL: ${regressions.length} scenario(s) regress through the gateway`
      : "\nOK: every scenario that passes on the baseline passes through the gateway",
  );
}
process.exit(regressions.length ? 1 : 0);
