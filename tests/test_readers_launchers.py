"""Scripts that start their servers elsewhere (a script they run or source, a job file, a submitter): what they run is
named, and nothing is read from text the shell only prints (fixtures in tests/fixtures/readers/launchers/)."""

from __future__ import annotations

from test_readers import lint

from disagg.schemas.cmdline import script_run


def test_a_usage_text_printed_by_cat_is_not_run():
    r = lint("launchers/submit-with-usage.sh")
    assert r.deployment is None
    assert "no serving command found" in r.error.message and "submit-with-usage.sh" not in r.error.message  # only printed


def test_bash_runs_a_job_file_whatever_its_name_ends_in_and_its_folder_may_be_set_at_run_time():
    r = lint("launchers/harness-profile.sh")
    assert r.deployment is None and r.error.line == 6 and "it runs pd_job.slurm" in r.error.message


def test_sourced_files_are_named_and_a_commented_server_line_is_no_worker():
    r = lint("launchers/sourced-env.sh")
    assert r.deployment is None and "common_env.sh" in r.error.message and "buckets.sh" in r.error.message


def test_script_run_forms():
    assert script_run(["sbatch", "-N", "2", "--exclusive", "job.slurm"]) == "job.slurm"
    assert script_run(["sbatch", "--wrap", "vllm serve m"]) is None
    assert script_run(["bash", "-c", "echo hi"]) is None
    assert script_run(["source", "$DIR/env.sh"]) == "env.sh"
    assert script_run(["sh", "$SCRIPT"]) is None  # which script is set at run time
    assert script_run(["python", "run.py"]) is None
