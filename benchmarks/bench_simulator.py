"""B12: how long the survey simulator takes to simulate and label a dataset (issue 13).

For each --scales value, builds the simulated dataset of every type of the config exactly as
the workflow's build_dataset job does (stellarspec.data.sources.build_dataset: population,
spectra, template_fit labels against all 40 spEigenStar-53724 templates, the Table 1 selection
and cap), with the types in --jobs parallel processes of one thread each, as
`snakemake --cores 2` runs them. Records per type the wall time, spectra observed (simulated
and labelled), spectra selected, and ms per observed spectrum; per scale the wall time of all
types together.

    python benchmarks/bench_simulator.py --out results/bench/simulator.json --scales 0.1 1.0

Scale 0.1 is the quick default (`make run`); 1.0 the paper's counts (10,903 selected).
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STELLARSPEC_SHARED", REPO.parent / "shared")).resolve()


def resolve(path: str) -> str:
    """A config path relative to the workflow root; ../shared/... falls back to SHARED."""
    here = (REPO / path).resolve()
    if here.exists() or not path.startswith("../shared/"):
        return str(here)
    return str(SHARED / path[len("../shared/"):])


def build_one(cfg: dict, stellar_type: str) -> dict:
    from stellarspec.data import sources

    start = time.perf_counter()
    ds, rejects = sources.build_dataset(cfg, stellar_type)
    wall = time.perf_counter() - start
    survey = ds.provenance["inputs"]["survey"]
    return {"type": stellar_type, "scale": cfg["scale"], "wall_s": round(wall, 1),
            "n_observed": survey["n_observed"], "n_selected": len(ds),
            "ms_per_observed": round(1000 * wall / max(survey["n_observed"], 1), 2),
            "reached": survey["reached"], "n_rejects": len(rejects)}


def table(result: dict) -> str:
    lines = ["| scale | type | selected | observed (simulated + labelled) | wall (s) | "
             "ms / observed spectrum |", "|---|---|---|---|---|---|"]
    for run in result["runs"]:
        for r in run["types"]:
            lines.append(f"| {run['scale']:g} | {r['type']} | {r['n_selected']} | "
                         f"{r['n_observed']} | {r['wall_s']} | {r['ms_per_observed']} |")
        lines.append(f"| {run['scale']:g} | all, {result['jobs']} processes | "
                     f"{sum(r['n_selected'] for r in run['types'])} | "
                     f"{sum(r['n_observed'] for r in run['types'])} | **{run['wall_s']}** | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "results/bench/simulator.json")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--types", nargs="+", default=None)
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes (cores)")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"                     # one thread per job, as the workflow's
    from stellarspec.io import package_versions, write_json

    base = yaml.safe_load(args.config.read_text())
    base["source"] = "simulated"
    for key in ("sdss_path", "kesseli_dir"):
        base["templates"][key] = resolve(base["templates"][key])
    types = args.types or list(base["types"])
    runs = []
    for scale in args.scales:
        cfg = copy.deepcopy(base) | {"scale": scale}
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(build_one, [cfg] * len(types), types))
        runs.append({"scale": scale, "wall_s": round(time.perf_counter() - start, 1),
                     "types": results})
        print(table({"runs": runs[-1:], "jobs": args.jobs}), flush=True)
    result = {"runs": runs, "jobs": args.jobs, "config": str(args.config),
              "load_average": [round(x, 2) for x in os.getloadavg()],
              "machine": platform.platform(), "cpu_count": os.cpu_count(),
              "versions": package_versions()}
    write_json(args.out, result)


# --- BENCHMARKS.md (run_all.py stitches the sections) -------------------------------------

def summary(key: str, result: dict) -> list[str]:
    return []  # B12 has no row in the summary table


def render(key: str, result: dict, run) -> list[str]:
    return [table(result)]


if __name__ == "__main__":
    main()
