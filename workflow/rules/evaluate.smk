# Evaluation of every finished run under both protocols (`--protocol both`: deterministic
# metrics at the top level of eval.json, stochastic ones under "stochastic", same episode seeds).
# The asymmetric agents' first greedy episode is also rendered (frames at its start and at
# master switches) for the timeline figures.


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
        "asymbench evaluate {params.run} --protocol both --out {output.eval}"
        " --trace {output.trace}"
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
        "asymbench evaluate {params.run} --protocol both --out {output.eval}"
        " --trace {output.trace}"
        " --frames {output.frames} {params.options} --threads {threads} > {log} 2>&1"


# Ours with its sub-policies' noise as SAC's (the `mcc_grid` target): no frames.
use rule evaluate as evaluate_noise_variant with:
    wildcard_constraints:
        method="ours_as_sac",


# Every milestone's snapshot is evaluated as a finished run is (no trace, no frames).
rule evaluate_milestone:
    input:
        run="results/{scale}/{task}/{method}/milestones/{step}/seed{seed}/snapshot.json",
    output:
        eval="results/{scale}/{task}/{method}/milestones/{step}/seed{seed}/eval.json",
    log:
        "results/{scale}/logs/{task}/{method}/seed{seed}/evaluate_{step}.log",
    wildcard_constraints:
        step=r"\d+",
    params:
        run=input_run_dir,
        options=evaluate_options,
    threads: 1
    priority: 10
    resources:
        mem_mb=resource("evaluate", "mem_mb"),
        runtime=resource("evaluate", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench evaluate {params.run} --protocol both --out {output.eval} {params.options}"
        " --threads {threads} > {log} 2>&1"
