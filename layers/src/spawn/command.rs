//! What to spawn: a tractor child, a scipp child, or any program that
//! speaks the `_child` contract.

use std::ffi::OsString;
use std::path::PathBuf;

/// The module tractor always adds to a child's `enable_modules`.
pub const TRACTOR_DEBUG_MODULE: &str = "tractor.devx._debug";

/// Which kind of child: decides the command line before tractor's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `python -m tractor._child`.
    Tractor { python: PathBuf },
    /// `program args...`.
    Program {
        program: PathBuf,
        args: Vec<OsString>,
    },
}

/// One child to spawn: its name, its program, its enabled modules.
///
/// ```
/// use scipp_layers::spawn::ChildSpec;
///
/// let worker = ChildSpec::program("worker", "/usr/local/bin/scipp", ["child"])
///     .module("scipp_peer", "");
/// assert_eq!(worker.name(), "worker");
/// let py = ChildSpec::tractor("py_worker", "python3").module("spawn_fns", "spawn_fns.py");
/// assert_eq!(py.modules()[0].0, "spawn_fns");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) modules: Vec<(String, String)>,
    pub(crate) loglevel: Option<String>,
    pub(crate) asyncio: bool,
    pub(crate) env: Vec<(OsString, OsString)>,
}

impl ChildSpec {
    /// A tractor child run by the interpreter `python` (tractor must be
    /// importable there): `python -m tractor._child …`. The nursery adds
    /// `tractor.devx._debug` to its modules, as tractor does.
    pub fn tractor(name: impl Into<String>, python: impl Into<PathBuf>) -> Self {
        Self::with_kind(
            name,
            Kind::Tractor {
                python: python.into(),
            },
        )
    }

    /// Any program that speaks the `_child` contract (a scipp binary's
    /// `child` subcommand, a user's Rust binary built on
    /// [`ChildRuntime`](super::ChildRuntime)): `program args… --uid …`.
    pub fn program<I, S>(name: impl Into<String>, program: impl Into<PathBuf>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self::with_kind(
            name,
            Kind::Program {
                program: program.into(),
                args: args.into_iter().map(Into::into).collect(),
            },
        )
    }

    fn with_kind(name: impl Into<String>, kind: Kind) -> Self {
        ChildSpec {
            name: name.into(),
            kind,
            modules: Vec::new(),
            loglevel: Some("ERROR".into()),
            asyncio: false,
            env: Vec::new(),
        }
    }

    /// Enables `module` (its file `path`) in the child (`enable_modules`).
    pub fn module(mut self, module: impl Into<String>, path: impl Into<String>) -> Self {
        self.modules.push((module.into(), path.into()));
        self
    }

    /// `--loglevel` (default `ERROR`, as tractor sends when none is set);
    /// `None` leaves the flag out.
    pub fn loglevel(mut self, level: Option<String>) -> Self {
        self.loglevel = level;
        self
    }

    /// `--asyncio`: run the (tractor) child's trio as a guest of asyncio.
    pub fn asyncio(mut self, yes: bool) -> Self {
        self.asyncio = yes;
        self
    }

    /// Sets an environment variable for the child (e.g. `PYTHONPATH` for
    /// a tractor child); the rest of the parent's environment is inherited.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The enabled modules, module → file.
    pub fn modules(&self) -> &[(String, String)] {
        &self.modules
    }

    /// The interpreter, for a tractor child.
    pub(crate) fn python(&self) -> Option<&PathBuf> {
        match &self.kind {
            Kind::Tractor { python } => Some(python),
            Kind::Program { .. } => None,
        }
    }

    /// The program and the arguments before tractor's flags.
    pub(crate) fn program_and_args(&self) -> (PathBuf, Vec<OsString>) {
        match &self.kind {
            Kind::Tractor { python } => {
                (python.clone(), vec!["-m".into(), "tractor._child".into()])
            }
            Kind::Program { program, args } => (program.clone(), args.clone()),
        }
    }
}

/// The file of Python module `module`, as interpreter `python` finds it
/// (from the current directory, as tractor's parent would).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use scipp_layers::spawn::{find_module_file, ChildSpec};
/// let python = std::path::Path::new("python3");
/// let file = find_module_file(python, "my_module").await.unwrap();
/// let child = ChildSpec::tractor("py_worker", python).module("my_module", file);
/// # drop(child);
/// # }
/// ```
///
/// # Errors
/// The interpreter could not be run, or has no such module.
pub async fn find_module_file(python: &std::path::Path, module: &str) -> Result<String, String> {
    let script = "import importlib.util, sys\n\
                  spec = importlib.util.find_spec(sys.argv[1])\n\
                  sys.exit(1) if spec is None or not spec.origin else print(spec.origin)";
    let out = tokio::process::Command::new(python)
        .args(["-c", script, module])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("no such module");
        return Err(last.to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
