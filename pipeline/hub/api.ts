/**
 * The two metadata calls a snapshot download needs (hf-hub.md §1): resolve a branch
 * or tag to a commit once, then list that commit's files (paginated by Link headers).
 * Server answers are untrusted: shapes and file names are checked.
 */
import * as z from "zod";
import { assertSafeRepoPath, type TreeFile } from "./cache.js";
import { getJson, HubHttpError, type HttpOptions } from "./http.js";

const revisionInfo = z.object({ sha: z.string().regex(/^[0-9a-f]{40}$/) });

const treeEntry = z.object({
  type: z.enum(["file", "directory"]),
  path: z.string(),
  size: z.number().int().nonnegative().optional(),
  oid: z.string().regex(/^[0-9a-f]{40}$/).optional(),
  lfs: z.object({ oid: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }).optional(),
});

const MAX_TREE_PAGES = 10_000;

export async function resolveRevision(options: HttpOptions, repo: string, revision: string): Promise<string> {
  const url = `${options.settings.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}`;
  const { body } = await getJson(options, url, repo, `resolving ${repo}@${revision}`);
  const parsed = revisionInfo.safeParse(body);
  if (!parsed.success) throw new HubHttpError("E_HUB_BAD_RESPONSE", `resolving ${repo}@${revision}: the answer has no commit sha`, 200);
  return parsed.data.sha;
}

/** Every file of `commit`, recursively, following `Link: <...>; rel="next"`. */
export async function listFiles(options: HttpOptions, repo: string, commit: string): Promise<TreeFile[]> {
  const files: TreeFile[] = [];
  let url: string | undefined = `${options.settings.endpoint}/api/models/${repo}/tree/${commit}?recursive=true&expand=false`;
  for (let page = 0; url; page++) {
    if (page >= MAX_TREE_PAGES) throw new HubHttpError("E_HUB_BAD_RESPONSE", `listing ${repo}: more than ${MAX_TREE_PAGES} pages`, 200);
    const { body, headers, url: fetched } = await getJson(options, url, repo, `listing ${repo}@${commit.slice(0, 12)}`);
    const entries = z.array(treeEntry).safeParse(body);
    if (!entries.success) throw new HubHttpError("E_HUB_BAD_RESPONSE", `listing ${repo}: unexpected tree format (${entries.error.issues[0]?.message})`, 200);
    for (const entry of entries.data) {
      if (entry.type !== "file") continue;
      assertSafeRepoPath(entry.path);
      if (entry.size === undefined || entry.oid === undefined) {
        throw new HubHttpError("E_HUB_BAD_RESPONSE", `listing ${repo}: file ${entry.path} has no size or oid`, 200);
      }
      files.push({ path: entry.path, size: entry.lfs?.size ?? entry.size, oid: entry.oid, ...(entry.lfs ? { lfsSha256: entry.lfs.oid } : {}) });
    }
    url = nextLink(headers.link, fetched);
  }
  return files;
}

/** The rel="next" target of a Link header, made absolute. */
export function nextLink(link: string | string[] | undefined, base: string): string | undefined {
  const value = Array.isArray(link) ? link.join(", ") : link;
  const match = value && /<([^>]+)>\s*;\s*rel="?next"?/.exec(value);
  return match ? new URL(match[1]!, base).toString() : undefined;
}
