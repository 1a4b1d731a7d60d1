/**
 * allow/ignore patterns with Python fnmatch semantics (hf-hub.md §10): `*` matches
 * `/` too, `?` one character, `[...]` classes, case-sensitive, anchored. Hand-written:
 * minimatch and picomatch keep `*` inside one path segment, which would make
 * `*.safetensors` miss `sub/x.safetensors` where huggingface_hub matches it.
 */
export function fnmatchToRegExp(pattern: string): RegExp {
  let p = pattern.replace(/\\/g, "/");
  if (p.endsWith("/")) p += "*";
  let out = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[") {
      const close = p.indexOf("]", i + 2);
      if (close === -1) {
        out += "\\[";
        continue;
      }
      let body = p.slice(i + 1, close).replace(/\\/g, "\\\\");
      if (body.startsWith("!")) body = "^" + body.slice(1);
      else if (body.startsWith("^")) body = "\\" + body;
      out += `[${body}]`;
      i = close;
    } else out += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  return new RegExp(`^${out}$`, "s");
}

/** Keep a path if it matches any allow pattern (when there are any) and no ignore pattern. */
export function pathFilter(allow: readonly string[] | undefined, ignore: readonly string[] | undefined): (path: string) => boolean {
  const allowed = (allow ?? []).map(fnmatchToRegExp);
  const ignored = (ignore ?? []).map(fnmatchToRegExp);
  return (path) => (allowed.length === 0 || allowed.some((r) => r.test(path))) && !ignored.some((r) => r.test(path));
}
