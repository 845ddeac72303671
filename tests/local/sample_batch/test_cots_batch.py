"""The sample COTS batch, run through Run Command on the emulator and directly."""

from __future__ import annotations

import subprocess


def batch_command(sample_batch, *args: str) -> str:
    return " ".join(["bash", f"'{sample_batch}'", *args])


class TestThroughRunCommand:
    def test_batch_writes_its_report_on_every_instance(self, emu, run, sample_batch):
        line = batch_command(
            sample_batch, "--keywords", "invoice,refund", "--report", "out/report.tsv", "--duration", "0.2"
        )
        command, results = run.run([line], emu.instance_ids)
        assert command["Status"] == "Success"
        for instance_id, result in results.items():
            assert (
                f"SUMMARY instance={instance_id} documents=5 invoice=4 refund=4"
                in result["StandardOutputContent"]
            )
            report = emu.state_dir / "instances" / instance_id / "out" / "report.tsv"
            lines = report.read_text().splitlines()
            assert lines[0] == "document\tkeyword\tcount" and len(lines) == 1 + 5 * 2

    def test_fail_on_fails_only_that_instance_with_exit_code_3(self, emu, run, sample_batch):
        failing = emu.instance_ids[1]
        line = batch_command(sample_batch, "--duration", "0", "--fail-on", failing)
        command, results = run.run([line], emu.instance_ids)
        assert (command["Status"], command["ErrorCount"]) == ("Failed", 1)
        assert results[failing]["ResponseCode"] == 3
        assert f"instance {failing} is configured to fail" in results[failing]["StandardErrorContent"]
        assert "1/5 doc-01.txt" in results[failing]["StandardOutputContent"]
        assert all(r["ResponseCode"] == 0 for iid, r in results.items() if iid != failing)


class TestDirectly:
    def run_batch(self, sample_batch, cwd, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(sample_batch), *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def test_exit_code_option_ends_with_that_code_after_the_report(self, sample_batch, tmp_path):
        done = self.run_batch(sample_batch, tmp_path, "--duration", "0", "--exit-code", "5")
        assert done.returncode == 5
        assert (tmp_path / "report.tsv").is_file()
        assert "exiting with code 5" in done.stderr

    def test_hostile_arguments_are_data_not_code(self, sample_batch, tmp_path):
        done = self.run_batch(
            sample_batch,
            tmp_path,
            "--keywords",
            "$(touch pwned),-e,*,a b",
            "--report",
            "odd dir/r; ls.tsv",
            "--duration",
            "0",
        )
        assert done.returncode == 0, done.stderr
        assert not (tmp_path / "pwned").exists()
        assert "$(touch pwned)\t0" in (tmp_path / "odd dir" / "r; ls.tsv").read_text()

    def test_given_input_directory_is_indexed(self, sample_batch, tmp_path):
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "a.txt").write_text("alpha beta alpha\n")
        done = self.run_batch(
            sample_batch, tmp_path, "--input", str(docs), "--keywords", "alpha", "--duration", "0"
        )
        assert "SUMMARY instance=local documents=1 alpha=2" in done.stdout

    def test_bad_options_exit_2_with_a_message(self, sample_batch, tmp_path):
        for args in (
            ["--duration", "soon"],
            ["--keywords", ","],
            ["--exit-code", "300"],
            ["--nope"],
            ["--report"],
        ):
            done = self.run_batch(sample_batch, tmp_path, *args)
            assert done.returncode == 2 and done.stderr.startswith("cots_batch: error:"), args
