/**
 * The offline solve: activation files staged for upstream's solver and exporter, and the
 * Python driver that runs both (powerinfer-py), used by the `gpu-split` task.
 */
import { link, mkdir, copyFile, readdir } from "node:fs/promises";
import { join } from "node:path";

/**
 * Stages `activation_{i}.pt` (i < layers) twice, as hard links (copies across filesystems):
 * `<dir>/solver/activation_{i}.pt` for solver.py, which opens them by numeric name, and
 * `<dir>/export/activation_{i zero-padded}.pt` for export_split.py, which sorts the names as
 * strings (activation_10 before activation_2). No single folder satisfies both for 11+
 * layers, so the two upstream functions are called with their own folder.
 */
export async function stageActivations(source: string, dir: string, layers: number): Promise<{ solver: string; exporter: string }> {
  const solver = join(dir, "solver");
  const exporter = join(dir, "export");
  await mkdir(solver, { recursive: true });
  await mkdir(exporter, { recursive: true });
  const width = String(Math.max(0, layers - 1)).length;
  const present = new Set(await readdir(source));
  for (let i = 0; i < layers; i++) {
    const name = `activation_${i}.pt`;
    if (!present.has(name)) throw new Error(`${join(source, name)} is missing (the model has ${layers} layers)`);
    const from = join(source, name);
    await linkOrCopy(from, join(solver, name));
    await linkOrCopy(from, join(exporter, `activation_${String(i).padStart(width, "0")}.pt`));
  }
  return { solver, exporter };
}

async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch {
    await copyFile(from, to);
  }
}

/** Runs upstream's solver and exporter (powerinfer-py) on the staged folders; argv: the solver CLI plus --export-activation. */
export const SOLVER_DRIVER = `
import argparse, sys
from powerinfer.solver import solve_gpu_split
from powerinfer.export_split import export_split
p = argparse.ArgumentParser()
p.add_argument("--activation", required=True)
p.add_argument("--export-activation", required=True)
p.add_argument("--neuron", type=int, required=True)
p.add_argument("--capacity", type=int, required=True)
p.add_argument("--layer", type=int, required=True)
p.add_argument("--vram-capacity", type=int, required=True)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--threshold", type=int, default=0)
p.add_argument("--output", required=True)
a = p.parse_args()
solved = solve_gpu_split(activation_path=a.activation, neuron=a.neuron, capacity=a.capacity, layer=a.layer, batch=a.batch, threshold=a.threshold)
print(f"solved: {solved}, total neurons: {sum(solved)}", flush=True)
export_split(activations_path=a.export_activation, output_path=a.output, solved_list=solved, vram_capacity=a.vram_capacity)
print(f"exported {a.output}", flush=True)
`;
