# Training: S-only, L-only and the asymmetric agent (with and without the cost term) from
# scratch; fit sized after Ours' mean Avg-FLOPs/Inf over seeds. ONE job trains every seed of a
# (task, method) together (`asymbench train --seeds ...`, the batched engine: stacked networks,
# one process), and writes each seed's run folder. run.json, written last for every seed, is
# the declared output: the group's checkpoint must survive a killed job so that the rerun resumes.


# One pair of rules per task: a task's seeds may differ (a scale's `per_task`), and an output
# list cannot depend on a wildcard.
for _task in tasks_of(SCALE):
    _id = re.sub(r"\W", "_", _task)

    rule:
        name:
            f"train_{_id}"
        output:
            runs=expand("results/{{scale}}/{{task}}/{{method}}/seed{seed}/run.json", seed=seeds_of(SCALE, _task)),
        log:
            "results/{scale}/logs/{task}/{method}/train.log",
        wildcard_constraints:
            task=re.escape(_task),
            method=f"s_only|l_only|ours|ours_no_cost|{PARETO_METHOD}",
        params:
            method=lambda wildcards: train_method_of(wildcards.method),
            out=group_dir,
            seeds=" ".join(str(s) for s in seeds_of(SCALE, _task)),
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


    rule:
        name:
            f"train_fit_{_id}"
        input:
            width_from=expand("results/{{scale}}/{{task}}/ours/seed{seed}/eval.json", seed=seeds_of(SCALE, _task)),
        output:
            runs=expand("results/{{scale}}/{{task}}/{{method}}/seed{seed}/run.json", seed=seeds_of(SCALE, _task)),
        log:
            "results/{scale}/logs/{task}/{method}/train.log",
        wildcard_constraints:
            task=re.escape(_task),
            method="fit",
        params:
            out=group_dir,
            seeds=" ".join(str(s) for s in seeds_of(SCALE, _task)),
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
