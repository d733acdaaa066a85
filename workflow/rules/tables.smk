# Tables 3, 4 and 5: paper_tables/tableN.{csv,md,tex} for the paper scale and
# paper_tables/<scale>/tableN.* for any other ({scaledir} is "" or "<scale>/").


rule table:
    input:
        unpack(table_inputs),
    output:
        csv=report(
            "paper_tables/{scaledir}{table}.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
        md="paper_tables/{scaledir}{table}.md",
        tex="paper_tables/{scaledir}{table}.tex",
    log:
        "paper_tables/{scaledir}logs/{table}.log",
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
        "asymbench tables {wildcards.table} --scale {params.scale} --out {output.csv}"
        " {params.evaluations} {params.registry} > {log} 2>&1"
