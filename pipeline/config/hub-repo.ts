/**
 * A Hugging Face model id "org/name", as huggingface_hub's validate_repo_id accepts it:
 * letters, digits, "_", "-", "." with a word character at each end, no "--" or "..", at
 * most 96 characters. The org is required here (every PowerInfer repo has one). Its own
 * module: policies and recipes both use it, and a policy load must not pull in recipes.
 */
import * as z from "zod";

export const hubRepoIdSchema = z
  .string()
  .max(96, "a Hugging Face repo id is at most 96 characters")
  .regex(/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\/[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/, 'a Hugging Face repo id "org/name", e.g. "SparseLLM/ReluLLaMA-7B"')
  .refine((id) => !id.includes("--") && !id.includes(".."), 'a Hugging Face repo id may not contain "--" or ".."');

/** `hf://org/name` (the integration blueprint's form) or `org/name`: parsed to `org/name`. */
export const hubSourceRepoSchema = z
  .string()
  .max(101, "a Hugging Face repo id is at most 96 characters")
  .regex(/^(?:hf:\/\/)?[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\/[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/, 'a Hugging Face repo "hf://org/name" or "org/name", e.g. "hf://SparseLLM/ReluLLaMA-7B"')
  .refine((id) => !id.includes("--") && !id.includes(".."), 'a Hugging Face repo id may not contain "--" or ".."')
  .transform((id) => id.replace(/^hf:\/\//, ""));
