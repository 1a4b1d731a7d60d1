/**
 * Where error codes are declared, found with TypeScript's own parser, so a structure test
 * can insist that each code is declared in one place. A declaration is where a code joins
 * a list of codes:
 *   - an element of an array bound to a `*_CODES` constant (`HUB_ERROR_CODES = [...] as const`);
 *   - a string literal member of a type alias's union (`type X = "E_A" | "E_B"`);
 *   - a member name of an interface or enum (`interface ErrorCodes { E_A: true }`).
 * A throw site (`new PipelineError("E_A", ...)`), a comparison, a table key (`E_A: {...}`),
 * a type argument (`PipelineError<"E_A">`, `DeclaredCode<"E_A">`, `Extract<C, "E_A">`) or a
 * parameter's type only uses a code.
 */
import { readFileSync } from "node:fs";
import { sourceFiles } from "../../scripts/check-structure.js";
import { join } from "node:path";
import ts from "typescript";

export interface CodeDeclaration {
  code: string;
  /** "file:line". */
  place: string;
}

const CODE = /^E_[A-Z0-9_]+$/;

/** The codes one source file declares. */
export function codeDeclarations(file: string, text: string): CodeDeclaration[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: CodeDeclaration[] = [];
  const declare = (node: ts.StringLiteral | ts.Identifier) => {
    if (CODE.test(node.text)) found.push({ code: node.text, place: `${file}:${source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1}` });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && /_CODES$/.test(node.name.text) && node.initializer) {
      const list = withoutAssertions(node.initializer);
      if (ts.isArrayLiteralExpression(list)) for (const element of list.elements) if (ts.isStringLiteral(element)) declare(element);
    } else if (ts.isTypeAliasDeclaration(node)) {
      for (const member of unionMembers(node.type)) if (ts.isLiteralTypeNode(member) && ts.isStringLiteral(member.literal)) declare(member.literal);
    } else if (ts.isInterfaceDeclaration(node) || ts.isEnumDeclaration(node)) {
      for (const member of node.members) if (member.name && (ts.isIdentifier(member.name) || ts.isStringLiteral(member.name))) declare(member.name);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** `[...] as const`, `[...] satisfies T`, `([...])`: the array inside. */
function withoutAssertions(expression: ts.Expression): ts.Expression {
  if (ts.isAsExpression(expression) || ts.isSatisfiesExpression(expression) || ts.isParenthesizedExpression(expression)) return withoutAssertions(expression.expression);
  return expression;
}

/** The top-level members of a union (through parentheses), not what sits in type arguments. */
function unionMembers(type: ts.TypeNode): ts.TypeNode[] {
  if (ts.isParenthesizedTypeNode(type)) return unionMembers(type.type);
  if (ts.isUnionTypeNode(type)) return type.types.flatMap(unionMembers);
  return [type];
}

/** "E_X is declared 2 times: a.ts:3, b.ts:9", for each code declared in more than one place. */
export function duplicateDeclarations(declarations: readonly CodeDeclaration[]): string[] {
  const places = new Map<string, string[]>();
  for (const { code, place } of declarations) places.set(code, [...(places.get(code) ?? []), place]);
  return [...places].filter(([, at]) => at.length > 1).map(([code, at]) => `${code} is declared ${at.length} times: ${at.join(", ")}`);
}

/** Every declaration in the TypeScript sources under `dirs` (relative to `root`), tests and declaration files left out. */
export function declarationsUnder(root: string, dirs: readonly string[]): CodeDeclaration[] {
  const files = dirs.flatMap((dir) => sourceFiles(root, dir)).filter((file) => !file.endsWith(".test.ts"));
  return files.flatMap((file) => codeDeclarations(file, readFileSync(join(root, file), "utf8")));
}
