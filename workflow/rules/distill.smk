# Baselines distilled from the L-only teacher: expert data (trajectories x length state-action
# pairs), then BC and GAIL students of one width per task, the one the fit baseline gets
# (train.smk): from Ours' mean Avg-FLOPs/Inf over the task's seeds, or with `student_width:
# paper` the registry's paper_fit_width.


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
        width_from=student_width_inputs,
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
        width=student_width_option,
    threads: 1
    resources:
        mem_mb=resource("distill", "mem_mb"),
        runtime=resource("distill", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench distill --method {wildcards.method} --teacher {params.teacher}"
        " --expert {input.expert} {params.width} --out {params.out}"
        " --seed {wildcards.seed} {params.options} --threads {threads} --quiet > {log} 2>&1"
