# `snakemake pareto`: Ours (config `pareto.variant`: its sub-policy noise dropped, or as SAC's)
# trained at each cost weight factor x lambda of config `pareto: lambda_factors` (lambda: the
# config's `lambda` override, else the registry's) over the scale's seeds, evaluated like every
# run, and per task a figure and a CSV: score against Avg-FLOPs/Inf, mean and 95% CI over seeds,
# with S-only, L-only, fit, BC and GAIL of the same scale, the paper's Ours point and the
# non-dominated front:
#   results/<scale>/figures/pareto_<task>[_as_sac].{png,pdf,csv}
# Runs live in results/<scale>/<task>/ours[_as_sac]_lam<factor>/seed<S>/; factor 1 reuses Ours'
# runs (ours, ours_as_sac) and, for the dropped noise, factor 0 those of Ours without the cost
# term (see pareto_method in common.smk). The train rule trains the sweep's folders (`asymbench
# train --method asym --lam <factor x lambda>`: train_method_of and cost_weight in common.smk).
# Its helpers are in common.smk; included from figures.smk.

rule pareto:
    input:
        pareto_targets,


# The sweep's runs are evaluated exactly as every other run.
use rule evaluate as evaluate_pareto with:
    wildcard_constraints:
        method=PARETO_METHOD,


rule pareto_figure:
    input:
        unpack(pareto_inputs),
    output:
        png=report(
            "results/{scale}/figures/pareto_{task}{variant}.png",
            caption="../report/pareto.rst",
            category="Figures",
            subcategory="Pareto sweep of the cost weight",
            labels={"task": "{task}"},
        ),
        pdf="results/{scale}/figures/pareto_{task}{variant}.pdf",
        csv="results/{scale}/figures/pareto_{task}{variant}.csv",
    log:
        "results/{scale}/logs/figures/pareto_{task}{variant}.log",
    wildcard_constraints:
        variant="|_as_sac",
    params:
        evaluations=pareto_options,
        variant=lambda wildcards: wildcards.variant.lstrip("_") or "dropped",
        delta=verdict_delta,
        registry=registry_option,
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench figures pareto --task {wildcards.task} --scale {wildcards.scale}"
        " {params.evaluations} {params.registry} --variant {params.variant} --delta {params.delta}"
        " --out {output.png} {output.pdf}"
        " --csv {output.csv} > {log} 2>&1"
