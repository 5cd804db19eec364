//! Runs the user's `docker`, `kind` and `kubectl` as child processes: no
//! shell, arguments as a list (paths with spaces need no quoting), and an
//! error that names a missing tool and where to get it.

use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Docker,
    Kind,
    Kubectl,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::Docker => "docker",
            Tool::Kind => "kind",
            Tool::Kubectl => "kubectl",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Tool::Docker => "https://docs.docker.com/get-docker/",
            Tool::Kind => "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
            Tool::Kubectl => "https://kubernetes.io/docs/tasks/tools/",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("`{program}` is not on PATH: berth kind needs it (install: {hint})", program = .0.program(), hint = .0.install_hint())]
    Missing(Tool),
    #[error("cannot run {0}: {1}")]
    Spawn(&'static str, std::io::Error),
    #[error("`{command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
}

/// A finished child process.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Where `program` is on PATH, if anywhere; checked before `up` changes anything.
pub fn find(tool: Tool) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool.program()))
        .find(|candidate| candidate.is_file())
}

/// Fails with [`ToolError::Missing`] for the first tool not on PATH.
pub fn require(tools: &[Tool]) -> Result<(), ToolError> {
    match tools.iter().find(|t| find(**t).is_none()) {
        Some(t) => Err(ToolError::Missing(*t)),
        None => Ok(()),
    }
}

/// Runs `tool args...`, feeding `stdin` when given; a non-zero exit is not an
/// error here (callers use [`check`] when it is).
pub fn run<S: AsRef<OsStr>>(
    tool: Tool,
    args: &[S],
    stdin: Option<&str>,
) -> Result<Output, ToolError> {
    let mut cmd = Command::new(tool.program());
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::Missing(tool),
        _ => ToolError::Spawn(tool.program(), e),
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits without reading all of it reports its own error.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| ToolError::Spawn(tool.program(), e))?;
    Ok(Output {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Like [`run`], but a non-zero exit becomes [`ToolError::Failed`].
pub fn check<S: AsRef<OsStr>>(
    tool: Tool,
    args: &[S],
    stdin: Option<&str>,
) -> Result<String, ToolError> {
    let out = run(tool, args, stdin)?;
    if out.success {
        Ok(out.stdout)
    } else {
        let command = std::iter::once(tool.program().to_string())
            .chain(
                args.iter()
                    .map(|a| a.as_ref().to_string_lossy().into_owned()),
            )
            .collect::<Vec<_>>()
            .join(" ");
        Err(ToolError::Failed {
            command,
            stderr: out.stderr.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_names_where_to_get_it() {
        for t in [Tool::Docker, Tool::Kind, Tool::Kubectl] {
            let msg = ToolError::Missing(t).to_string();
            assert!(
                msg.contains(t.program()) && msg.contains("https://"),
                "{msg}"
            );
        }
    }
}
