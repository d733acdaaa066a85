# Deterministic evaluation of every finished run. The asymmetric agents' first episode is also
# rendered (frames at its start and at master switches) for the timeline figures.


rule evaluate:
    input:
        run="results/{scale}/{task}/{method}/seed{seed}/run.json",
    output:
        eval="results/{scale}/{task}/{method}/seed{seed}/eval.json",
        trace="results/{scale}/{task}/{method}/seed{seed}/trace.csv",
    log:
        "results/{scale}/logs/{task}/{method}/seed{seed}/evaluate.log",
    wildcard_constraints:
        method="s_only|l_only|fit|bc|gail",
    params:
        run=input_run_dir,
        options=evaluate_options,
    threads: 1
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench evaluate {params.run} --out {output.eval} --trace {output.trace}"
        " {params.options} --threads {threads} > {log} 2>&1"


rule evaluate_asym:
    input:
        run="results/{scale}/{task}/{method}/seed{seed}/run.json",
    output:
        eval="results/{scale}/{task}/{method}/seed{seed}/eval.json",
        trace="results/{scale}/{task}/{method}/seed{seed}/trace.csv",
        frames=directory("results/{scale}/{task}/{method}/seed{seed}/frames"),
    log:
        "results/{scale}/logs/{task}/{method}/seed{seed}/evaluate.log",
    wildcard_constraints:
        method="ours|ours_no_cost",
    params:
        run=input_run_dir,
        options=evaluate_options,
    threads: 1
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench evaluate {params.run} --out {output.eval} --trace {output.trace}"
        " --frames {output.frames} {params.options} --threads {threads} > {log} 2>&1"
