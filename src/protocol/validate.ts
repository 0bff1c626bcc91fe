/**
 * Compiled validators for wire shapes. Compile once at start-up; a failed check becomes one
 * INVALID_PARAMS error listing each problem with its JSON pointer path.
 */
import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { RpcError, type ParamProblem } from './errors.js';

/** Enough problems to fix a request in one go, few enough to keep an error response small. */
export const MAX_REPORTED_PROBLEMS = 8;

export interface Validator<T extends TSchema> {
  /** Returns the value typed, or throws INVALID_PARAMS with every problem and its path. */
  parse(value: unknown): Static<T>;
  check(value: unknown): value is Static<T>;
  problems(value: unknown): ParamProblem[];
}

export function compileValidator<T extends TSchema>(schema: T): Validator<T> {
  const compiled = Compile(schema);
  const problems = (value: unknown) => describeProblems(compiled.Errors(value));
  return {
    check: (value): value is Static<T> => compiled.Check(value),
    problems,
    parse(value) {
      if (compiled.Check(value)) return value as Static<T>;
      throw RpcError.invalidParams(problems(value));
    },
  };
}

interface RawError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/**
 * TypeBox reports every failed branch of a union and several errors for one unknown property; a
 * person needs one line per place. Keep the most telling error per path, in words that name the fix.
 */
function describeProblems(raw: Iterable<unknown>): ParamProblem[] {
  const byPath = new Map<string, ParamProblem>();
  for (const item of raw) {
    const error = item as RawError;
    for (const problem of describe(error)) {
      const existing = byPath.get(problem.path);
      // A union's summary ("must be one of") is better than one failed branch ("must equal now").
      if (!existing || error.keyword === 'anyOf' || error.keyword === 'enum') byPath.set(problem.path, problem);
    }
    if (byPath.size >= MAX_REPORTED_PROBLEMS) break;
  }
  return [...byPath.values()].slice(0, MAX_REPORTED_PROBLEMS);
}

function describe(error: RawError): ParamProblem[] {
  const { keyword, params, instancePath } = error;
  switch (keyword) {
    case 'required': {
      const missing = (params['requiredProperties'] as string[] | undefined) ?? [];
      return missing.map((name) => ({ path: `${instancePath}/${name}`, message: 'is required' }));
    }
    // TypeBox reports each unknown property as a "boolean" (schema false) error at its own path.
    case 'boolean':
      return [{ path: instancePath, message: 'is not a known parameter' }];
    case 'additionalProperties':
      return [];
    case 'type':
      return [{ path: instancePath, message: `must be ${article(String(params['type']))}` }];
    case 'minLength':
      return [
        {
          path: instancePath,
          message: params['limit'] === 1 ? 'must not be empty' : `must be at least ${String(params['limit'])} characters`,
        },
      ];
    case 'maxLength':
      return [{ path: instancePath, message: `must be at most ${String(params['limit'])} characters` }];
    case 'enum':
      return [{ path: instancePath, message: `must be one of ${listOf(params['allowedValues'])}` }];
    default:
      return [{ path: instancePath, message: error.message }];
  }
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function listOf(values: unknown): string {
  return Array.isArray(values) ? values.map((v) => JSON.stringify(v)).join(', ') : String(values);
}
