# Training: S-only, L-only and the asymmetric agent (with and without the cost term) from
# scratch; fit sized after Ours' mean Avg-FLOPs/Inf over seeds. ONE job trains every seed of a
# (task, method) together (`asymbench train --seeds ...`, the batched engine: stacked networks,
# one process), and writes each seed's run folder. run.json, written last for every seed, is
# the declared output: the group's checkpoint must survive a killed job so that the rerun resumes.


rule train:
    output:
        runs=expand("results/{{scale}}/{{task}}/{{method}}/seed{seed}/run.json", seed=seeds_of(SCALE)),
    log:
        "results/{scale}/logs/{task}/{method}/train.log",
    wildcard_constraints:
        method="s_only|l_only|ours|ours_no_cost",
    params:
        method=lambda wildcards: TRAIN_METHOD[wildcards.method],
        out=group_dir,
        seeds=" ".join(str(s) for s in seeds_of(SCALE)),
        options=train_options,
    threads: 1
    resources:
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench train --task {wildcards.task} --method {params.method} --seeds {params.seeds}"
        " --out {params.out} {params.options} --threads {threads} --quiet > {log} 2>&1"


rule train_fit:
    input:
        width_from=expand("results/{{scale}}/{{task}}/ours/seed{seed}/eval.json", seed=seeds_of(SCALE)),
    output:
        runs=expand("results/{{scale}}/{{task}}/{{method}}/seed{seed}/run.json", seed=seeds_of(SCALE)),
    log:
        "results/{scale}/logs/{task}/{method}/train.log",
    wildcard_constraints:
        method="fit",
    params:
        out=group_dir,
        seeds=" ".join(str(s) for s in seeds_of(SCALE)),
        options=train_options,
    threads: 1
    resources:
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench train --task {wildcards.task} --method {wildcards.method} --seeds {params.seeds}"
        " --width-from {input.width_from} --out {params.out} {params.options}"
        " --threads {threads} --quiet > {log} 2>&1"
