# What the configured scale costs before running it: expected CPU-hours per task and method and
# the wall time on the cores this invocation is given (local: --cores N; cluster: --jobs N), with
# one thread per job and with the threads it plans per training job (benchmarks/results/
# thread_scaling.json when present); results/<scale>/estimate.json is that plan, for config
# `thread_plan`. Training jobs of a scale's `device: cuda` (in the config file: command-line
# overrides do not reach it) run at the GPU measurements' rates, `gpu_slots` of them per GPU. Training is one job per (task, method) for all its K seeds
# (train.smk), at the batched engine's per-seed rate at K (benchmarks/results/
# engine_throughput*.json of one machine kind, CPU runs); the other jobs are per seed. Rates come from the measurements in
# benchmarks/results/ when present (benchmarks/README.md says how to make them), else from
# labelled fallbacks. Each task's seeds are the scale's (its per_task ones included).
# Not part of `all`:
#   snakemake --cores 16 estimate [--config scale=short]
# -> results/<scale>/estimate.txt (the printed tables) and results/<scale>/estimate.json
# (its helper functions are in common.smk)

rule estimate:
    input:
        **MEASUREMENTS,
    output:
        json=f"results/{SCALE}/estimate.json",
        txt=f"results/{SCALE}/estimate.txt",
    log:
        f"results/{SCALE}/logs/estimate.log",
    params:
        scale=SCALE,
        cores=estimate_cores,
        options=estimate_options,
    localrule: True
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench estimate --scale {params.scale} --cores {params.cores} {params.options}"
        " --out {output.json} > {output.txt} 2> {log}"
