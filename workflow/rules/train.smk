# Training: S-only, L-only and the asymmetric agent (with and without the cost term) from
# scratch; fit sized after Ours' mean Avg-FLOPs/Inf over seeds. ONE job trains every seed of a
# (task, method) together (`asymbench train --seeds ...`, the batched engine: stacked networks,
# one process), and writes each seed's run folder.
#
# A run trains in segments that end at the scale's `milestones`, then at its budget: one job per
# segment (`--until STEP`), each resuming from the group checkpoint its predecessor left
# (`--segment-start`; the checkpoint is not a declared output, so that it survives a killed
# job and the rerun resumes). Every schedule follows the full budget, so a milestone's snapshot
# (`milestones/<step>/seed<S>/`, snapshot.json written last) is the full run observed there.
# The last segment writes the run folders the rest of the DAG uses (run.json written last).
# A group that finished after its Snakemake process died is accepted by the rerun (run.json
# written back from the group's record), and the group's own train.log keeps every job's lines
# (Snakemake deletes a job's log under logs/ when it reruns the job). `registry_entry`, a
# digest of the task's registry entry, retrains a task's runs when that entry changes.
#
# Threads and device (common.smk, "threads, device"): a job's `--threads` come from the config's
# `thread_plan` (`asymbench estimate --out`) or the scale's `train_threads` (default 1), capped by
# --cores, and SLURM's cpus_per_task follows them; a scale's `device: cuda` adds `--device cuda`
# and the resources gpu_slot=1, one of the scale's `gpu_slots` per GPU (local: --resources
# gpu_slot=<GPUs x gpu_slots>), and gpu=1 where a job has a GPU to itself (SLURM: --gpus=1;
# sharing, gres=shard:1, SLURM's GPU shards). Runs are bit-identical at
# 1 and 2 threads (tested), so a plan changes no number. A scale's `compile` (off | auto | on)
# is the update's engine.compile (`--compile`, where not auto); config.json's `runtime` records it.


def _step(wildcards):
    return wildcards.step


def _budget(wildcards):
    return budget_of(wildcards.scale, wildcards.task)


# One pair of rules per task: a task's seeds and milestones may differ (a scale's `per_task`),
# and an output list cannot depend on a wildcard.
for _task in tasks_of(SCALE):
    _id = re.sub(r"\W", "_", _task)
    _methods = f"s_only|l_only|ours|ours_no_cost|fit|ours_as_sac|{PARETO_METHOD}"

    if milestones_of(SCALE, _task):

        rule:
            name:
                f"train_segment_{_id}"
            input:
                unpack(segment_inputs(_step)),
            output:
                snapshots=expand(
                    "results/{{scale}}/{{task}}/{{method}}/milestones/{{step}}/seed{seed}/snapshot.json",
                    seed=seeds_of(SCALE, _task),
                ),
            log:
                "results/{scale}/logs/{task}/{method}/train_{step}.log",
            wildcard_constraints:
                task=re.escape(_task),
                method=_methods,
                step="|".join(str(m) for m in milestones_of(SCALE, _task)),
            params:
                method=lambda wildcards: train_method_of(wildcards.method),
                out=lambda wildcards, output: str(Path(output.snapshots[0]).parents[3]),
                seeds=" ".join(str(s) for s in seeds_of(SCALE, _task)),
                options=train_options,
                segment=segment_options(_step),
                registry_entry=task_entry_digest,
            threads: train_threads
            resources:
                mem_mb=resource("train", "mem_mb"),
                runtime=resource("train", "runtime"),
                cpus_per_task=train_cpus,
                gpu=train_gpus,
                gpu_slot=train_gpu_slots,
                gres=train_gres,
            conda:
                "../envs/asymbench.yaml"
            shell:
                "asymbench train --task {wildcards.task} --method {params.method} --seeds {params.seeds}"
                " --out {params.out} {params.options} --until {wildcards.step} {params.segment}"
                " --threads {threads} --quiet > {log} 2>&1"

    rule:
        name:
            f"train_{_id}"
        input:
            unpack(segment_inputs(_budget)),
        output:
            runs=expand("results/{{scale}}/{{task}}/{{method}}/seed{seed}/run.json", seed=seeds_of(SCALE, _task)),
        log:
            "results/{scale}/logs/{task}/{method}/train.log",
        wildcard_constraints:
            task=re.escape(_task),
            method=_methods,
        params:
            method=lambda wildcards: train_method_of(wildcards.method),
            out=group_dir,
            seeds=" ".join(str(s) for s in seeds_of(SCALE, _task)),
            options=train_options,
            segment=segment_options(_budget),
            registry_entry=task_entry_digest,
        threads: train_threads
        resources:
            mem_mb=resource("train", "mem_mb"),
            runtime=resource("train", "runtime"),
            cpus_per_task=train_cpus,
            gpu=train_gpus,
            gpu_slot=train_gpu_slots,
            gres=train_gres,
        conda:
            "../envs/asymbench.yaml"
        shell:
            "asymbench train --task {wildcards.task} --method {params.method} --seeds {params.seeds}"
            " --out {params.out} {params.options} {params.segment} --threads {threads} --quiet > {log} 2>&1"
