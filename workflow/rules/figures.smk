# Figures in results/<scale>/figures/: the sub-policy timeline of Ours' first evaluation
# episode (Figs. 2 and 3) and learning curves of every trained method, per task.


rule timeline:
    input:
        trace=timeline_input("trace.csv"),
        eval=timeline_input("eval.json"),
        frames=timeline_input("frames"),
    output:
        png=report(
            "results/{scale}/figures/timeline_{task}.png",
            caption="../report/timeline.rst",
            category="Figures",
            subcategory="Sub-policy timelines",
            labels={"task": "{task}"},
        ),
        pdf="results/{scale}/figures/timeline_{task}.pdf",
    log:
        "results/{scale}/logs/figures/timeline_{task}.log",
    params:
        seed=figure_seed,
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench figures timeline --trace {input.trace} --eval {input.eval} --frames {input.frames}"
        " --run-seed {params.seed} --scale {wildcards.scale} --out {output.png} {output.pdf} > {log} 2>&1"


rule learning_curves:
    input:
        unpack(curve_inputs),
    output:
        png=report(
            "results/{scale}/figures/curves_{task}.png",
            caption="../report/curves.rst",
            category="Figures",
            subcategory="Learning curves",
            labels={"task": "{task}"},
        ),
        pdf="results/{scale}/figures/curves_{task}.pdf",
    log:
        "results/{scale}/logs/figures/curves_{task}.log",
    params:
        runs=method_options,
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench figures curves --task {wildcards.task} --scale {wildcards.scale} {params.runs}"
        " --out {output.png} {output.pdf} > {log} 2>&1"


# Score (return; success rate for goal tasks) against Avg-FLOPs/Inf of every method of Tables
# 3-5, mean and 95% CI over seeds on both axes, the paper's published points beside them.
rule tradeoff:
    input:
        unpack(tradeoff_inputs),
    output:
        png=report(
            "results/{scale}/figures/tradeoff_{task}.png",
            caption="../report/tradeoff.rst",
            category="Figures",
            subcategory="Return against FLOPs",
            labels={"task": "{task}"},
        ),
        pdf="results/{scale}/figures/tradeoff_{task}.pdf",
    log:
        "results/{scale}/logs/figures/tradeoff_{task}.log",
    params:
        evaluations=method_options,
        registry=registry_option,
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench figures tradeoff --task {wildcards.task} --scale {wildcards.scale}"
        " {params.evaluations} {params.registry} --out {output.png} {output.pdf} > {log} 2>&1"


# `snakemake pareto`: the sweep of Ours' cost weight (not part of the default target).
include: "pareto.smk"


# Claim (a) along training, per task: scores and Ours' normalized score at every milestone the
# task's runs have reached, against 1 - delta; the CSV adds each method's best over training.
rule verdict_figure:
    input:
        unpack(verdict_figure_inputs),
    output:
        png="results/{scale}/figures/verdict_{task}.png",
        pdf="results/{scale}/figures/verdict_{task}.pdf",
        csv="results/{scale}/figures/verdict_{task}.csv",
    log:
        "results/{scale}/logs/figures/verdict_{task}.log",
    params:
        delta=verdict_delta,
        registry=registry_option,
    priority: 10
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench figures verdict --task {wildcards.task} --s-only {input.s_only}"
        " --l-only {input.l_only} --ours {input.ours} --delta {params.delta} --csv {output.csv}"
        " --scale {wildcards.scale} --out {output.png} {output.pdf} {params.registry} > {log} 2>&1"


# Ours' normalized score across tasks: every Table 3 and grid under paper_tables/ (each scale,
# protocol, milestone and noise setting that exists; the smoke scale's left out), against
# 1 - delta and the paper's point.
# Not part of `all`: `snakemake paper_tables/verdicts.png` once tables have changed (README).
rule verdicts_across_tasks:
    input:
        committed_verdict_tables,
    output:
        png=report(
            "paper_tables/verdicts.png",
            caption="../report/verdicts.rst",
            category="Figures",
            subcategory="Across tasks",
            labels={"figure": "normalized score per task and budget"},
        ),
        pdf="paper_tables/verdicts.pdf",
    log:
        "paper_tables/logs/verdicts.log",
    params:
        registry=registry_option,
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench figures verdicts --tables {input} {params.registry}"
        " --out {output.png} {output.pdf} > {log} 2>&1"
