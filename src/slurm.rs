//! Slurm job arrays: sbatch scripts for the stages of a sweep, submitted as a dependency chain.
//!
//! A sweep is a list of [`ArrayStage`]s. Each stage becomes one job array (one array task per
//! run, `--array=0-(tasks-1)`), written by [`write_scripts`] to
//! `<dir>/slurm/<n>-<name>.sbatch` with every task's output in
//! `<dir>/slurm/logs/gunlearn-<name>-<array job id>_<task index>.out`. [`submit`] hands them to
//! `sbatch` in order, each stage with `--dependency=afterok:<previous stage's job id>`: it starts
//! only once every task of the previous stage succeeded, and is cancelled by Slurm
//! (`--kill-on-invalid-dep=yes`) when one of them failed.
//!
//! Tasks run with sbatch's defaults otherwise: in the folder `sbatch` was called from, with the
//! submitting shell's environment (`--export=ALL`).

use anyhow::{bail, Context};
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options passed to sbatch for every job; `None` leaves the cluster's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlurmOptions {
    /// `--partition`: the partition (queue) to run in.
    pub partition: Option<String>,
    /// `--gres`: generic resources per task, e.g. `gpu:1`.
    pub gres: Option<String>,
    /// `--time`: wall-clock limit per task, in a Slurm time format such as `30`, `2:00:00`,
    /// `1-12` or `1-00:00:00`.
    pub time: Option<String>,
    /// `--cpus-per-task`: CPUs per array task.
    pub cpus_per_task: Option<usize>,
    /// `--mem`: memory per node (that is, per task here), e.g. `16G`.
    pub mem: Option<String>,
    /// Further sbatch options, one per `#SBATCH` line: `--account=proj` or `#SBATCH --qos=low`.
    pub extra: Vec<String>,
}

/// One job array: `tasks` array tasks, each running `command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayStage {
    /// Name of the stage: letters, digits, `.`, `_`, `-`; part of the job and file names.
    pub name: String,
    /// Number of array tasks; a stage with none is skipped.
    pub tasks: usize,
    /// Shell code run by every task (bash); `$SLURM_ARRAY_TASK_ID` is its index, 0-based.
    pub command: String,
}

/// `s` as one bash word: unchanged when it is plain, otherwise single-quoted (for commands).
pub fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Checks a value that must be one word: not empty, no white space, quotes or control characters.
fn check_word(flag: &str, value: &str) -> anyhow::Result<()> {
    if value.is_empty() {
        bail!("{flag} must not be empty");
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
    {
        bail!("{flag} {value:?}: must not contain {c:?}");
    }
    Ok(())
}

/// Whether `s` is a Slurm time limit: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`, or
/// `UNLIMITED`/`INFINITE`.
fn is_slurm_time(s: &str) -> bool {
    if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("infinite") {
        return true;
    }
    let number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let (days, clock) = match s.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, s),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    days.is_none_or(number) && parts.len() <= 3 && parts.iter().all(|p| number(p))
}

impl SlurmOptions {
    /// Checks every option, with an error naming the flag it came from.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(p) = &self.partition {
            check_word("--partition", p)?;
        }
        if let Some(g) = &self.gres {
            check_word("--gres", g)?;
        }
        if let Some(t) = &self.time {
            check_word("--time", t)?;
            if !is_slurm_time(t) {
                bail!(
                    "--time {t:?}: expected minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S or UNLIMITED"
                );
            }
        }
        if self.cpus_per_task == Some(0) {
            bail!("--cpus-per-task must be at least 1");
        }
        if let Some(m) = &self.mem {
            check_word("--mem", m)?;
            let digits = m.trim_end_matches(|c: char| "KMGTkmgt".contains(c));
            if digits.is_empty()
                || m.len() - digits.len() > 1
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                bail!("--mem {m:?}: expected a number with an optional unit K, M, G or T (16G)");
            }
        }
        for line in &self.extra {
            let option = extra_option(line);
            if line.contains(['\n', '\r', '\0']) {
                bail!("sbatch option {line:?}: must be one line");
            }
            if !option.starts_with('-') {
                bail!("sbatch option {line:?}: expected an option such as --account=NAME");
            }
        }
        Ok(())
    }

    /// The `#SBATCH` lines for these options.
    fn sbatch_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut add = |flag: &str, value: &Option<String>| {
            if let Some(v) = value {
                lines.push(format!("#SBATCH --{flag}={v}"));
            }
        };
        add("partition", &self.partition);
        add("gres", &self.gres);
        add("time", &self.time);
        add("cpus-per-task", &self.cpus_per_task.map(|c| c.to_string()));
        add("mem", &self.mem);
        lines.extend(
            self.extra
                .iter()
                .map(|l| format!("#SBATCH {}", extra_option(l))),
        );
        lines
    }
}

/// An extra option without a leading `#SBATCH`, if it was given with one.
fn extra_option(line: &str) -> &str {
    line.trim()
        .strip_prefix("#SBATCH")
        .unwrap_or(line.trim())
        .trim()
}

/// Checks a stage's name and command.
fn validate_stage(stage: &ArrayStage) -> anyhow::Result<()> {
    let name = &stage.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        bail!("stage name {name:?}: use letters, digits, '.', '_' and '-' only");
    }
    if stage.command.trim().is_empty() {
        bail!("stage {name}: empty command");
    }
    if stage.command.contains('\0') {
        bail!("stage {name}: command contains a NUL byte");
    }
    Ok(())
}

/// The `--output` pattern for logs in `dir`, double-quoted, refusing folders sbatch cannot take.
fn log_pattern(dir: &Path) -> anyhow::Result<String> {
    let s = dir
        .to_str()
        .with_context(|| format!("{} is not valid UTF-8", dir.display()))?;
    // sbatch reads `#SBATCH` arguments up to white space unless double-quoted, and has no
    // escape for a quote inside them; `%` starts one of its file name patterns (%A, %a, %x).
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, '"' | '%' | '\\') || c.is_control())
    {
        bail!("folder {s:?}: sbatch cannot write logs under a path containing {c:?}");
    }
    Ok(format!("\"{}\"", dir.join("%x-%A_%a.out").display()))
}

/// The text of one stage's sbatch script, with its logs in `log_dir` (an absolute path).
pub fn script_text(
    stage: &ArrayStage,
    opts: &SlurmOptions,
    log_dir: &Path,
) -> anyhow::Result<String> {
    opts.validate()?;
    validate_stage(stage)?;
    if stage.tasks == 0 {
        bail!("stage {}: no tasks", stage.name);
    }
    let log = log_pattern(log_dir)?;
    let mut s = String::from("#!/bin/bash\n");
    writeln!(s, "#SBATCH --job-name=gunlearn-{}", stage.name)?;
    writeln!(s, "#SBATCH --array=0-{}", stage.tasks - 1)?;
    writeln!(s, "#SBATCH --output={log}")?;
    writeln!(s, "#SBATCH --error={log}")?;
    for line in opts.sbatch_lines() {
        writeln!(s, "{line}")?;
    }
    writeln!(
        s,
        "# Written by gunlearn: stage {:?}, {} array task(s); each runs the command below with",
        stage.name, stage.tasks
    )?;
    writeln!(s, "# its index (0-based) in $SLURM_ARRAY_TASK_ID.")?;
    // -e: a failing step fails the task, so the next stage (afterok) never starts.
    s.push_str("set -e -o pipefail\n");
    s.push_str(stage.command.trim_end());
    s.push('\n');
    Ok(s)
}

/// Writes one sbatch script per stage with tasks, `dir/slurm/<n>-<name>.sbatch` (`n` the stage's
/// 0-based position in `stages`), and returns their paths in order. Stages with no tasks are
/// skipped: they get no script and no entry. Task logs go to
/// `dir/slurm/logs/%x-%A_%a.out` (job name, array job id, task index).
pub fn write_scripts(
    dir: &Path,
    stages: &[ArrayStage],
    opts: &SlurmOptions,
) -> anyhow::Result<Vec<PathBuf>> {
    opts.validate()?;
    for stage in stages {
        validate_stage(stage)?;
    }
    let logs = dir.join("slurm").join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    // Absolute, as sbatch takes a relative --output from the job's working folder.
    let dir = std::fs::canonicalize(dir.join("slurm"))
        .with_context(|| format!("resolving {}", dir.display()))?;
    let logs = dir.join("logs");
    let mut paths = Vec::new();
    for (n, stage) in stages.iter().enumerate() {
        if stage.tasks == 0 {
            continue;
        }
        let text = script_text(stage, opts, &logs)?;
        let path = dir.join(format!("{n}-{}.sbatch", stage.name));
        crate::fsutil::write_bytes_atomic(&path, text.as_bytes())?;
        paths.push(path);
    }
    Ok(paths)
}

/// Submits the scripts in order with `sbatch --parsable`, each after the first with
/// `--dependency=afterok:<previous job id> --kill-on-invalid-dep=yes`, and returns the job ids.
/// Fails with sbatch's stderr, and the ids of the jobs already submitted, if a submission fails.
pub fn submit(scripts: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    submit_with(OsStr::new("sbatch"), scripts)
}

/// [`submit`] with another sbatch program (a wrapper, or a stand-in in tests).
pub fn submit_with(sbatch: &OsStr, scripts: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    let submitted = |ids: &[String]| {
        if ids.is_empty() {
            String::new()
        } else {
            format!(
                " (already submitted: job(s) {}; cancel them with `scancel {}`)",
                ids.join(", "),
                ids.join(" ")
            )
        }
    };
    for script in scripts {
        let mut cmd = Command::new(sbatch);
        cmd.arg("--parsable");
        if let Some(prev) = ids.last() {
            cmd.arg(format!("--dependency=afterok:{prev}"))
                .arg("--kill-on-invalid-dep=yes");
        }
        cmd.arg(script);
        let out = match cmd.output() {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "{} not found: --slurm needs Slurm's sbatch on PATH (run on the cluster's login \
                 node){}",
                sbatch.to_string_lossy(),
                submitted(&ids)
            ),
            Err(e) => bail!(
                "running {}: {e}{}",
                sbatch.to_string_lossy(),
                submitted(&ids)
            ),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!(
                "sbatch {} failed ({}): {}{}",
                script.display(),
                out.status,
                stderr.trim(),
                submitted(&ids)
            );
        }
        // --parsable prints `<job id>` or `<job id>;<cluster>`.
        let id = stdout
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .and_then(|l| l.split(';').next())
            .unwrap_or("")
            .to_string();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            bail!(
                "sbatch {}: expected a job id, got {:?} (stderr: {}){}",
                script.display(),
                stdout.trim(),
                stderr.trim(),
                submitted(&ids)
            );
        }
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, tasks: usize, command: &str) -> ArrayStage {
        ArrayStage {
            name: name.into(),
            tasks,
            command: command.into(),
        }
    }

    fn full_opts() -> SlurmOptions {
        SlurmOptions {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            time: Some("1-02:00:00".into()),
            cpus_per_task: Some(4),
            mem: Some("16G".into()),
            extra: vec!["--account=proj".into(), "#SBATCH --qos=low".into()],
        }
    }

    #[test]
    fn script_has_array_range_options_and_command() {
        let cmd = "gunlearn run --index \"$SLURM_ARRAY_TASK_ID\" 'a b'";
        let text = script_text(&stage("runs", 5, cmd), &full_opts(), Path::new("/s/logs")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#!/bin/bash");
        for want in [
            "#SBATCH --job-name=gunlearn-runs",
            "#SBATCH --array=0-4",
            "#SBATCH --output=\"/s/logs/%x-%A_%a.out\"",
            "#SBATCH --error=\"/s/logs/%x-%A_%a.out\"",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --time=1-02:00:00",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --mem=16G",
            "#SBATCH --account=proj",
            "#SBATCH --qos=low",
        ] {
            assert!(lines.contains(&want), "{want:?} missing:\n{text}");
        }
        // sbatch reads #SBATCH lines only before the first command.
        let last_sbatch = lines
            .iter()
            .rposition(|l| l.starts_with("#SBATCH"))
            .unwrap();
        let first_code = lines
            .iter()
            .position(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        assert!(last_sbatch < first_code, "{text}");
        assert_eq!(*lines.last().unwrap(), cmd, "command verbatim, last");
        assert!(text.contains("set -e -o pipefail\n"), "{text}");
    }

    #[test]
    fn defaults_write_no_options_and_one_task_is_0_0() {
        let text = script_text(
            &stage("one", 1, "true"),
            &SlurmOptions::default(),
            Path::new("/l"),
        )
        .unwrap();
        assert!(text.contains("#SBATCH --array=0-0\n"), "{text}");
        for flag in ["--partition", "--gres", "--time", "--cpus", "--mem"] {
            assert!(!text.contains(flag), "{flag} in:\n{text}");
        }
    }

    #[test]
    fn write_scripts_numbers_by_stage_and_skips_empty_stages() {
        let dir = tempfile::tempdir().unwrap();
        let stages = [
            stage("prep", 2, "echo a"),
            stage("none", 0, "echo b"),
            stage("runs", 3, "echo c"),
        ];
        let paths = write_scripts(dir.path(), &stages, &SlurmOptions::default()).unwrap();
        let slurm = dir.path().join("slurm");
        assert_eq!(
            paths,
            vec![slurm.join("0-prep.sbatch"), slurm.join("2-runs.sbatch")]
        );
        assert!(slurm.join("logs").is_dir());
        let text = std::fs::read_to_string(&paths[1]).unwrap();
        assert!(text.contains("#SBATCH --array=0-2\n"), "{text}");
        let logs = slurm.join("logs").join("%x-%A_%a.out");
        assert!(
            text.contains(&format!("#SBATCH --output=\"{}\"\n", logs.display())),
            "{text}"
        );
    }

    #[test]
    fn relative_dirs_become_absolute_log_paths() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = std::env::current_dir().unwrap();
        let rel = pathdiff(dir.path(), &cwd);
        let paths = write_scripts(&rel, &[stage("s", 1, "true")], &SlurmOptions::default());
        let text = std::fs::read_to_string(&paths.unwrap()[0]).unwrap();
        let out = text
            .lines()
            .find(|l| l.starts_with("#SBATCH --output="))
            .unwrap();
        assert!(out.starts_with("#SBATCH --output=\"/"), "{out}");
    }

    /// `path` relative to `base` (both absolute), through `..` as needed.
    fn pathdiff(path: &Path, base: &Path) -> PathBuf {
        let ups = base.components().count() - 1;
        let mut p = PathBuf::new();
        for _ in 0..ups {
            p.push("..");
        }
        p.join(path.strip_prefix("/").unwrap())
    }

    fn err(opts: SlurmOptions) -> String {
        format!("{:#}", opts.validate().unwrap_err())
    }

    #[test]
    fn bad_options_name_their_flag() {
        let o = SlurmOptions::default;
        let e = err(SlurmOptions {
            partition: Some("".into()),
            ..o()
        });
        assert!(e.contains("--partition"), "{e}");
        let e = err(SlurmOptions {
            partition: Some("a\nb".into()),
            ..o()
        });
        assert!(e.contains("--partition"), "{e}");
        let e = err(SlurmOptions {
            gres: Some("gpu:1 --x".into()),
            ..o()
        });
        assert!(e.contains("--gres"), "{e}");
        for bad in ["", "1h", "1:2:3:4", "-1", "1-", "a-1", "12:"] {
            let e = err(SlurmOptions {
                time: Some(bad.into()),
                ..o()
            });
            assert!(e.contains("--time"), "{bad:?}: {e}");
        }
        let e = err(SlurmOptions {
            cpus_per_task: Some(0),
            ..o()
        });
        assert!(e.contains("--cpus-per-task"), "{e}");
        for bad in ["", "G", "16GB", "1.5G"] {
            let e = err(SlurmOptions {
                mem: Some(bad.into()),
                ..o()
            });
            assert!(e.contains("--mem"), "{bad:?}: {e}");
        }
        for bad in ["--a\n#SBATCH --b", "account=x"] {
            let e = err(SlurmOptions {
                extra: vec![bad.into()],
                ..o()
            });
            assert!(e.contains("sbatch option"), "{bad:?}: {e}");
        }
        full_opts().validate().unwrap();
    }

    #[test]
    fn slurm_time_formats() {
        for good in [
            "30",
            "30:00",
            "2:00:00",
            "1-12",
            "1-12:30",
            "1-12:30:00",
            "UNLIMITED",
            "infinite",
        ] {
            assert!(is_slurm_time(good), "{good}");
        }
    }

    #[test]
    fn bad_stages_and_paths_are_refused() {
        let o = SlurmOptions::default();
        let l = Path::new("/l");
        for name in ["", "a b", "a/b", "x;y"] {
            let e = script_text(&stage(name, 1, "true"), &o, l).unwrap_err();
            assert!(format!("{e}").contains("stage name"), "{e}");
        }
        assert!(script_text(&stage("s", 1, "  "), &o, l).is_err());
        assert!(script_text(&stage("s", 0, "true"), &o, l).is_err());
        for bad in ["/a%b", "/a\"b"] {
            let e = script_text(&stage("s", 1, "true"), &o, Path::new(bad)).unwrap_err();
            assert!(format!("{e}").contains("sbatch cannot"), "{e}");
        }
        // Spaces are fine: the path is quoted.
        let text = script_text(&stage("s", 1, "true"), &o, Path::new("/a b")).unwrap();
        assert!(text.contains("--output=\"/a b/%x-%A_%a.out\""), "{text}");
    }

    #[test]
    fn shell_quote_makes_one_word() {
        assert_eq!(shell_quote("a/b-c.d"), "a/b-c.d");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $x"), r"'it'\''s $x'");
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "printf %s {}",
                shell_quote("it's \"$HOME\" `x` \\n")
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "it's \"$HOME\" `x` \\n"
        );
    }

    /// A stand-in sbatch that logs its arguments and prints job ids 101, 102, ...
    fn fake_sbatch(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("sbatch");
        std::fs::write(&path, format!("#!/bin/bash\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn submit_chains_each_stage_after_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let sbatch = fake_sbatch(
            dir.path(),
            &format!(
                "echo \"$*\" >> '{0}'; n=$(wc -l < '{0}'); echo \"$((100 + n));cluster\"",
                log.display()
            ),
        );
        let scripts: Vec<PathBuf> = ["a", "b", "c"].iter().map(PathBuf::from).collect();
        let ids = submit_with(sbatch.as_os_str(), &scripts).unwrap();
        assert_eq!(ids, ["101", "102", "103"]);
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls.lines().collect::<Vec<_>>(),
            [
                "--parsable a",
                "--parsable --dependency=afterok:101 --kill-on-invalid-dep=yes b",
                "--parsable --dependency=afterok:102 --kill-on-invalid-dep=yes c",
            ]
        );
        assert!(submit_with(sbatch.as_os_str(), &[]).unwrap().is_empty());
    }

    #[test]
    fn submit_reports_sbatch_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-sbatch");
        let e = submit_with(missing.as_os_str(), &[PathBuf::from("a")]).unwrap_err();
        assert!(format!("{e}").contains("not found"), "{e}");

        // The second submission fails: its stderr and the first job's id are in the error.
        let count = dir.path().join("n");
        let sbatch = fake_sbatch(
            dir.path(),
            &format!(
                "echo x >> '{0}'; if [ $(wc -l < '{0}') -gt 1 ]; then \
                 echo 'sbatch: error: invalid partition specified: gpu' >&2; exit 1; fi; echo 7",
                count.display()
            ),
        );
        let scripts = [PathBuf::from("a"), PathBuf::from("b")];
        let e = format!("{}", submit_with(sbatch.as_os_str(), &scripts).unwrap_err());
        assert!(e.contains("invalid partition specified: gpu"), "{e}");
        assert!(e.contains("scancel 7"), "{e}");

        let sbatch = fake_sbatch(dir.path(), "echo 'Submitted batch job'");
        let e = submit_with(sbatch.as_os_str(), &scripts).unwrap_err();
        assert!(format!("{e}").contains("expected a job id"), "{e}");
    }
}
