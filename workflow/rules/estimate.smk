# What the configured scale costs before running it: expected CPU-hours per task and method and
# the wall time on the cores this invocation is given (local: --cores N; cluster: --jobs N, one
# single-threaded job per core). Rates come from the measurements in benchmarks/results/ when
# present (benchmarks/README.md says how to make them), else from labelled fallbacks.
# Not part of `all`:
#   snakemake --workflow-profile workflow/profiles/local --cores 16 estimate [--config scale=short]
# -> results/<scale>/estimate.txt (the printed tables) and results/<scale>/estimate.json

MEASUREMENTS = {"throughput": sorted(str(p) for p in Path("benchmarks/results").glob("train_throughput*.json")),
                "env_rates": [p for p in ["benchmarks/results/env_step_rate.json"] if Path(p).exists()]}


def estimate_cores(wildcards):
    """--cores N of this invocation, else --jobs N (cluster executors), else 16."""
    for name in ("cores", "nodes"):
        try:
            value = getattr(workflow, name)
        except WorkflowError:
            value = None
        if isinstance(value, int) and value > 0:
            return value
    return 16


def estimate_options(wildcards, input):
    options = [f"--tasks {' '.join(tasks_of(SCALE))}",
               f"--seeds {' '.join(str(s) for s in seeds_of(SCALE))}"]
    options += [f"--{key.replace('_', '-')} {' '.join(paths)}" for key, paths in MEASUREMENTS.items()
                if paths]
    if workflow.configfiles:
        options.append(f"--config {workflow.configfiles[-1]}")
    return " ".join(options)


rule estimate:
    input:
        **MEASUREMENTS,
    output:
        json=f"results/{SCALE}/estimate.json",
        txt=f"results/{SCALE}/estimate.txt",
    params:
        scale=SCALE,
        cores=estimate_cores,
        options=estimate_options,
    localrule: True
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench estimate --scale {params.scale} --cores {params.cores} {params.options}"
        " --out {output.json} > {output.txt}"
