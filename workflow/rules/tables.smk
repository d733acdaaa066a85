# Tables 3, 4 and 5 and the aggregate over tasks: paper_tables/tableN.{csv,md,tex} and
# paper_tables/aggregate.{csv,md} for the paper scale, paper_tables/<scale>/... for any other
# ({scaledir} is "" or "<scale>/"). The stochastic evaluation protocol's tables lie in a
# stochastic/ folder below ({protocoldir} is "" or "stochastic/"), e.g.
# paper_tables/verify/stochastic/table3.csv. Every verdict uses the config's `verdict_delta`.

TABLE_WILDCARDS = {
    # one folder level for the scale, never "paper/" (the paper scale is paper_tables/ itself)
    # nor "stochastic/" (the paper scale's stochastic tables)
    "scaledir": r"|(?!paper/|stochastic/)[A-Za-z0-9_-]+/",
    "protocoldir": r"|stochastic/",
}


rule table:
    input:
        unpack(table_inputs),
    output:
        csv=report(
            "paper_tables/{scaledir}{protocoldir}{table}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}", "protocol": "{protocoldir}"},
        ),
        md="paper_tables/{scaledir}{protocoldir}{table}.md",
        tex="paper_tables/{scaledir}{protocoldir}{table}.tex",
    log:
        "paper_tables/{scaledir}logs/{protocoldir}{table}.log",
    wildcard_constraints:
        **TABLE_WILDCARDS,
    params:
        scale=scale_of,
        protocol=protocol_of,
        delta=verdict_delta,
        evaluations=method_options,
        registry=registry_option,
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench tables {wildcards.table} --scale {params.scale} --protocol {params.protocol}"
        " --delta {params.delta} --out {output.csv} {params.evaluations} {params.registry} > {log} 2>&1"


# runs.csv: every evaluation of the scale as one tidy row per task, method, seed, budget and
# protocol (docs/runs-csv.md). A checkpoint: the aggregate is asked for only where it can be
# computed from these runs (aggregate_of in common.smk).
checkpoint runs_table:
    input:
        unpack(runs_inputs),
    output:
        csv="paper_tables/{scaledir}runs.csv",
    log:
        "paper_tables/{scaledir}logs/runs.log",
    wildcard_constraints:
        scaledir=TABLE_WILDCARDS["scaledir"],
    params:
        scale=scale_of,
        evaluations=method_options,
        registry=registry_option,
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench tables runs --scale {params.scale} --out {output.csv} {params.evaluations}"
        " {params.registry} > {log} 2>&1"


rule aggregate_table:
    input:
        unpack(aggregate_inputs),
    output:
        csv=report(
            "paper_tables/{scaledir}{protocoldir}aggregate.csv",
            caption="../report/aggregate.rst",
            category="Tables",
            labels={"table": "aggregate", "protocol": "{protocoldir}"},
        ),
        md="paper_tables/{scaledir}{protocoldir}aggregate.md",
    log:
        "paper_tables/{scaledir}logs/{protocoldir}aggregate.log",
    wildcard_constraints:
        **TABLE_WILDCARDS,
    params:
        scale=scale_of,
        protocol=protocol_of,
        delta=verdict_delta,
        evaluations=method_options,
        registry=registry_option,
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench tables aggregate --scale {params.scale} --protocol {params.protocol}"
        " --delta {params.delta} --out {output.csv} {params.evaluations} {params.registry} > {log} 2>&1"


rule performance_profile:
    input:
        unpack(aggregate_inputs),
    output:
        png=report(
            "paper_tables/{scaledir}{protocoldir}performance_profile.png",
            caption="../report/profile.rst",
            category="Figures",
            subcategory="Across tasks",
            labels={"figure": "performance profile", "protocol": "{protocoldir}"},
        ),
        pdf="paper_tables/{scaledir}{protocoldir}performance_profile.pdf",
    log:
        "paper_tables/{scaledir}logs/{protocoldir}performance_profile.log",
    wildcard_constraints:
        **TABLE_WILDCARDS,
    params:
        scale=scale_of,
        protocol=protocol_of,
        delta=verdict_delta,
        evaluations=method_options,
        registry=registry_option,
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench figures profile --scale {params.scale} --protocol {params.protocol}"
        " --delta {params.delta} {params.evaluations} {params.registry}"
        " --out {output.png} {output.pdf} > {log} 2>&1"


# Tables 3 and 5 at every milestone: paper_tables/<scale>/milestones/<step>/{,stochastic/}tableN.* over the
# tasks that have that milestone (a task's budget counts as its last milestone).
rule milestone_table:
    input:
        unpack(milestone_table_inputs),
    output:
        csv="paper_tables/{scale}/milestones/{step}/{protocoldir}{table}.csv",
        md="paper_tables/{scale}/milestones/{step}/{protocoldir}{table}.md",
        tex="paper_tables/{scale}/milestones/{step}/{protocoldir}{table}.tex",
    log:
        "paper_tables/{scale}/milestones/logs/{protocoldir}{step}_{table}.log",
    wildcard_constraints:
        step=r"\d+",
        table="|".join(MILESTONE_TABLES),
        protocoldir=TABLE_WILDCARDS["protocoldir"],
    params:
        label=milestone_label,
        protocol=protocol_of,
        delta=verdict_delta,
        evaluations=method_options,
        registry=registry_option,
    priority: 10
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench tables {wildcards.table} --scale {params.label} --protocol {params.protocol}"
        " --delta {params.delta} --out {output.csv} {params.evaluations} {params.registry} > {log} 2>&1"


# Every milestone table that all its runs have reached (evaluates them; trains nothing).
rule milestones:
    input:
        reached_milestone_tables,


# `snakemake mcc_grid`: the task of config `grid` at the budget of each of its scales, Ours with
# its sub-policy noise dropped and as SAC, both protocols, with Table 3's verdicts:
# paper_tables/<scale>/variants/<name>.{csv,md}.
rule noise_budget_grid:
    input:
        unpack(grid_inputs),
    output:
        csv="paper_tables/{scaledir}variants/{grid}.csv",
        md="paper_tables/{scaledir}variants/{grid}.md",
    log:
        "paper_tables/{scaledir}logs/variants/{grid}.log",
    wildcard_constraints:
        scaledir=TABLE_WILDCARDS["scaledir"],
        grid=re.escape(config.get("grid", {}).get("name", "mcc_grid")),
    params:
        label=grid_label,
        delta=verdict_delta,
        evaluations=method_options,
        registry=registry_option,
    resources:
        mem_mb=resource("report", "mem_mb"),
        runtime=resource("report", "runtime"),
    conda:
        "../envs/asymbench.yaml"
    shell:
        "asymbench tables grid --scale {params.label} --delta {params.delta} --out {output.csv}"
        " {params.evaluations} {params.registry} > {log} 2>&1"
