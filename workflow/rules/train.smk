# Training: S-only, L-only and the asymmetric agent (with and without the cost term) from
# scratch; fit sized after Ours' Avg-FLOPs/Inf. run.json, written last by the trainer, is the
# only declared output: checkpoint/ must survive a killed job so that the rerun resumes.


rule train:
    output:
        run="results/{scale}/{task}/{method}/seed{seed}/run.json",
    log:
        "results/{scale}/logs/{task}/{method}/seed{seed}/train.log",
    wildcard_constraints:
        method="s_only|l_only|ours|ours_no_cost",
    params:
        method=lambda wildcards: TRAIN_METHOD[wildcards.method],
        out=run_dir,
        options=train_options,
    threads: 1
    resources:
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench train --task {wildcards.task} --method {params.method} --seed {wildcards.seed}"
        " --out {params.out} {params.options} --threads {threads} --quiet > {log} 2>&1"


rule train_fit:
    input:
        width_from="results/{scale}/{task}/ours/seed{seed}/eval.json",
    output:
        run="results/{scale}/{task}/{method}/seed{seed}/run.json",
    log:
        "results/{scale}/logs/{task}/{method}/seed{seed}/train.log",
    wildcard_constraints:
        method="fit",
    params:
        out=run_dir,
        options=train_options,
    threads: 1
    resources:
        mem_mb=resource("train", "mem_mb"),
        runtime=resource("train", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench train --task {wildcards.task} --method {wildcards.method} --seed {wildcards.seed}"
        " --width-from {input.width_from} --out {params.out} {params.options}"
        " --threads {threads} --quiet > {log} 2>&1"
