# asymbench: regenerates the paper's Tables 3, 4, 5 and its figures (arXiv 2105.14471).
#
#   snakemake --cores 16                                          # paper scale (profiles/default)
#   snakemake --cores 2 --config scale=smoke                      # minutes, 2 cores
#   snakemake --workflow-profile workflow/profiles/slurm          # on a SLURM cluster
#   snakemake --report report.html                                # after a run
# Targets: all (default), ablation_no_cost (Table 5), pareto (Ours over a list of cost weights),
# mcc_grid (Ours' sub-policy noise x training budget, config `grid`),
# paper_tables/verdicts.png (every Table 3 across tasks), or any file, e.g.
# paper_tables/table4.csv or paper_tables/verify/table3.csv. Training runs
# every seed of a (task, method) in one job (the batched engine). See results/README.md.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


read_command_line_numbers(config)
validate(config, "workflow/schemas/config.schema.yaml")
check_config()
check_milestones(config["scale"])

SCALE = config["scale"]
check_grid()
check_results(SCALE)


wildcard_constraints:
    scale=alternatives(config["scales"]),
    scaledir=r"|(?!paper/)[A-Za-z0-9_-]+/",
    task=alternatives(REGISTRY),
    seed=r"\d+",
    table=alternatives(TABLES),


report: "workflow/report/workflow.rst"


rule all:
    input:
        tables_of(SCALE),
        aggregate_of(SCALE),
        figures_of(SCALE),
    default_target: True


rule ablation_no_cost:
    input:
        tables_of(SCALE, ["table5"]),


# Ours with its sub-policy noise dropped and as SAC, at the budget of each scale of config
# `grid`, both evaluation protocols (tables.smk).
rule mcc_grid:
    input:
        grid_targets,


# The aggregate over tasks (IQM, probability of improvement, performance profile; tables.smk).
rule aggregate:
    input:
        aggregate_of(SCALE),


include: "workflow/rules/train.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"


# `asymbench estimate` (benchmarks) adds its own rule here once its file exists.
if Path(workflow.basedir, "workflow/rules/estimate.smk").exists():

    include: "workflow/rules/estimate.smk"
