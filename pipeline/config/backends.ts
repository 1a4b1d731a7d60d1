/** The engine's build backends (zod-free: the CLI's option parser needs them at start-up). */
export const BACKENDS = ["cpu", "cuda", "hip"] as const;
export type Backend = (typeof BACKENDS)[number];
