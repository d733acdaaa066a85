# Baselines distilled from the L-only teacher: expert data (trajectories x length state-action
# pairs), then BC and GAIL students sized after Ours' mean Avg-FLOPs/Inf over the task's seeds:
# every seed's student gets the same width, the one the fit baseline gets (train.smk).


rule expert:
    input:
        run="results/{scale}/{task}/l_only/seed{seed}/run.json",
    output:
        "results/{scale}/{task}/expert/seed{seed}.npz",
    log:
        "results/{scale}/logs/{task}/expert/seed{seed}.log",
    params:
        teacher=input_run_dir,
        options=expert_options,
    threads: 1
    resources:
        mem_mb=resource("expert", "mem_mb"),
        runtime=resource("expert", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench expert --teacher {params.teacher} --out {output} --seed {wildcards.seed}"
        " {params.options} > {log} 2>&1"


rule distill:
    input:
        run="results/{scale}/{task}/l_only/seed{seed}/run.json",
        expert="results/{scale}/{task}/expert/seed{seed}.npz",
        width_from=ours_evaluations,
    output:
        run="results/{scale}/{task}/{method}/seed{seed}/run.json",
    log:
        "results/{scale}/logs/{task}/{method}/seed{seed}/distill.log",
    wildcard_constraints:
        method="bc|gail",
    params:
        teacher=input_run_dir,
        out=run_dir,
        options=distill_options,
    threads: 1
    resources:
        mem_mb=resource("distill", "mem_mb"),
        runtime=resource("distill", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench distill --method {wildcards.method} --teacher {params.teacher}"
        " --expert {input.expert} --width-from {input.width_from} --out {params.out}"
        " --seed {wildcards.seed} {params.options} --threads {threads} --quiet > {log} 2>&1"
