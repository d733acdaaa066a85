#!/usr/bin/env bash
# A long campaign, milestone by milestone: every run of the chosen tasks reaches a milestone and
# is evaluated (both protocols, Table 3) before any trains on, so a working stretch that ends
# early still leaves the tables of every milestone it reached. Snakemake resumes every job from
# its checkpoint, so `start` after `stop` (or after a kill) goes on where the runs stood.
#
#   workflow/campaign.sh start     # in the background; log in $CAMPAIGN_LOGS
#   workflow/campaign.sh status    # each group's last checkpoint line, the tables reached
#   workflow/campaign.sh stop      # SIGTERM: every training job checkpoints its exact step
#   workflow/campaign.sh run       # in the foreground
#   workflow/campaign.sh plan      # the snakemake command of each milestone, without running it
#   workflow/campaign.sh collect <checkout>   # every run's milestone records into a checkout
#
# Settings (environment): CAMPAIGN_SCALE (paper), CAMPAIGN_TASKS ("walker-stand finger-spin"),
# CAMPAIGN_STEPS (the milestones, then the budget; default the paper scale's and dm_control's),
# CAMPAIGN_CORES (2), CAMPAIGN_LOGS (results/<scale>/logs/campaign). Run it from a checkout
# installed by install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scale=${CAMPAIGN_SCALE:-paper}
tasks=${CAMPAIGN_TASKS:-walker-stand finger-spin}
steps=${CAMPAIGN_STEPS:-100000 200000 500000 1000000 2000000}
cores=${CAMPAIGN_CORES:-2}
logs=${CAMPAIGN_LOGS:-results/$scale/logs/campaign}
venv="$root/.venv/bin"
export PATH="$venv:$PATH" MUJOCO_GL=${MUJOCO_GL:-egl}
# absolute, so that `stop` finds this checkout's snakemake and jobs
snakemake=$(command -v snakemake || echo "$venv/snakemake")
asymbench=$(command -v asymbench || echo "$venv/asymbench")

tables="paper_tables/$scale/milestones"   # every scale's milestone tables, the paper's included

# The first seed of a task's runs at the scale (as common.smk's seeds_of reads config.yaml): its
# snapshot stands for the group, since one job trains every seed of a group.
first_seed() {
    python -c 'import sys, yaml
scales = yaml.safe_load(open("config/config.yaml"))["scales"]
if sys.argv[1] not in scales:
    sys.exit(f"CAMPAIGN_SCALE: unknown scale {sys.argv[1]!r}; config/config.yaml has {sorted(scales)}")
s = scales[sys.argv[1]]
print((s.get("per_task", {}).get(sys.argv[2], {}).get("seeds") or s["seeds"])[0])' "$scale" "$1"
}

# The snakemake command (into the array `cmd`) that takes every run to milestone $1; the long
# groups (Ours, then L-only) start first, since they set the stage's makespan.
stage_command() {
    local step=$1 prio=() t m seed marker
    for t in $tasks; do
        seed=$(first_seed "$t")
        marker="milestones/$step/seed$seed/snapshot.json"
        [ "$step" = "${steps##* }" ] && marker="seed$seed/run.json"   # the budget: the run folder
        for m in ours l_only; do prio+=("results/$scale/$t/$m/$marker"); done
    done
    cmd=("$snakemake" --cores "$cores"
         --rerun-triggers mtime --config "scale=$scale" "tasks=[${tasks// /,}]"
         --prioritize "${prio[@]}" -- "$tables/$step/table3.csv" "$tables/$step/stochastic/table3.csv")
}

# Each task's verdict figure over the milestones reached.
figures_command() {
    local figs=() t
    for t in $tasks; do figs+=("results/$scale/figures/verdict_$t.png"); done
    cmd=("$snakemake" --cores "$cores"
         --rerun-triggers mtime --config "scale=$scale" "tasks=[${tasks// /,}]" -- "${figs[@]}")
}

run() {
    mkdir -p "$logs"
    local step
    for step in $steps; do
        stage_command "$step"
        echo "$(date -u +%FT%TZ) milestone $step: ${cmd[*]}" >> "$logs/campaign.log"
        "${cmd[@]}" >> "$logs/stage-$step.log" 2>&1
        figures_command
        "${cmd[@]}" >> "$logs/figures.log" 2>&1
        echo "$(date -u +%FT%TZ) milestone $step reached" >> "$logs/campaign.log"
    done
}

case ${1:-} in
    run) run ;;
    start)
        [ -x "$snakemake" ] || { echo "no snakemake in $venv: run 'bash install.sh' first" >&2; exit 1; }
        mkdir -p "$logs"
        if [ -f "$logs/campaign.pid" ] && kill -0 "$(cat "$logs/campaign.pid")" 2>/dev/null; then
            echo "already running (pid $(cat "$logs/campaign.pid"))" >&2; exit 1
        fi
        nohup "$root/workflow/campaign.sh" run > /dev/null 2>&1 &
        echo $! > "$logs/campaign.pid"
        echo "campaign started (pid $!), scale $scale, tasks: $tasks; log $logs/campaign.log" ;;
    stop)
        [ -f "$logs/campaign.pid" ] && kill -TERM "$(cat "$logs/campaign.pid")" 2>/dev/null || true
        rm -f "$logs/campaign.pid"
        pkill -TERM -f "$snakemake" || true
        sleep 5   # then the jobs themselves, each checkpointing its exact step
        pkill -TERM -f "$asymbench" || true
        echo "stopped; 'workflow/campaign.sh start' resumes every run from its checkpoint" ;;
    status)
        for log in results/"$scale"/logs/*/*/train_*.log; do
            [ -f "$log" ] && echo "${log#results/"$scale"/logs/}: $(tail -n 1 "$log")"
        done
        ls "$tables"/*/table3.csv 2>/dev/null || echo "no milestone table yet" ;;
    collect)
        # Every run's records at each milestone (eval.json, snapshot.json, config.json,
        # progress.csv) into another checkout's results/<scale>/records/<task>/<method>/..., where
        # `snakemake milestones --config from_records=True` rebuilds the tables and figures from
        # them after the run folders are gone. Tables are not copied: a campaign of fewer tasks
        # would replace a milestone table of more.
        [ -d "${2:?usage: workflow/campaign.sh collect <checkout>}/.git" ] ||
            { echo "$2 is not a checkout" >&2; exit 1; }
        dest=$(cd "$2" && pwd)
        mkdir -p "$dest/results/$scale/records"
        (cd "results/$scale" && find . -path '*/seed*' -type f \( -name '*.json' -o -name progress.csv \) \
            -not -path './records/*' -not -path './logs/*' -not -path '*/model/*' |
            xargs -r cp --parents -t "$dest/results/$scale/records")
        echo "collected into $dest/results/$scale/records: $(cd "$dest" && git status --short \
            --untracked-files=all "results/$scale/records" | wc -l) files new or changed" ;;
    plan)
        for step in $steps; do stage_command "$step"; echo "${cmd[*]}"; done
        figures_command; echo "${cmd[*]}" ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
