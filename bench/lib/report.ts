/** The one table the bench prints, and the same rows as JSON. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { round } from './stats.js';

export interface Row {
  /** Stable id for tools reading the JSON (e.g. "throughput.pipelined.echo"). */
  id: string;
  figure: string;
  /** What switchboard measured, for display (e.g. "182 ms", "p99 2.1 ms"). */
  switchboard: string;
  baseline: string;
  /** switchboard / baseline, or null when the figure has no baseline. */
  ratio: number | null;
  target: string;
  /** null: reported, no target. */
  pass: boolean | null;
  /** Raw numbers behind the row. */
  values: Record<string, unknown>;
}

export interface Report {
  startedAt: string;
  durationSeconds: number;
  parts: string[];
  machine: { node: string; platform: string; cpus: number; cpuModel: string; loadavg: number[]; totalMemMiB: number };
  rows: Row[];
  notes: string[];
}

export function machine(): Report['machine'] {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    loadavg: os.loadavg().map((load) => round(load, 2)),
    totalMemMiB: Math.round(os.totalmem() / 1024 / 1024),
  };
}

export function formatRatio(ratio: number | null): string {
  return ratio === null || !Number.isFinite(ratio) ? '—' : `${round(ratio, 2).toFixed(2)}×`;
}

function verdict(pass: boolean | null): string {
  return pass === null ? 'report' : pass ? 'pass' : 'FAIL';
}

export function table(rows: readonly Row[]): string {
  const header = ['figure', 'switchboard', 'baseline', 'ratio', 'target', 'result'];
  const cells = rows.map((row) => [row.figure, row.switchboard, row.baseline, formatRatio(row.ratio), row.target, verdict(row.pass)]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((line) => line[column]!.length)));
  const line = (values: readonly string[]) => `| ${values.map((value, column) => value.padEnd(widths[column]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

export function writeJson(file: string, report: Report): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
}

export function ms(value: number): string {
  return `${round(value)} ms`;
}

export function perSecond(value: number): string {
  return `${Math.round(value).toLocaleString('en-US')}/s`;
}
