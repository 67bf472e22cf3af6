//! tractor's `_child` command-line contract: the flags a parent gives a
//! child it spawns, written and parsed exactly as tractor does.
//!
//! ```text
//! python -m tractor._child --uid "('name', 'uuid')" --parent_addr "('host', port)" --loglevel ERROR
//! ```
//!
//! `--uid` and `--parent_addr` are Python `repr()`s of tuples; `--asyncio`
//! (trio guest mode on asyncio) is parsed and reported, not acted upon.

use scipp_codecs::msg::{Addr, Uid};
use std::fmt::Write as _;

/// Why a child's command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// A required flag is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A flag has no value after it.
    #[error("{0} needs a value")]
    NoValue(String),
    /// A value is not the Python tuple expected.
    #[error("{flag}: {why} in {value:?}")]
    BadValue {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        why: String,
        /// The value given.
        value: String,
    },
    /// A flag tractor's `_child` does not know.
    #[error("unknown argument {0:?}")]
    Unknown(String),
}

/// The flags of a spawned child (tractor's `_child` module).
///
/// ```
/// use scipp_layers::spawn::ChildArgs;
/// use scipp_codecs::msg::{Addr, Uid};
///
/// let args = ChildArgs {
///     uid: Uid::new("spawn_child", "4165cb59-57c4-428d-8e3b-d37fd8488208"),
///     parent_addr: Addr::Tcp { host: "127.0.0.1".into(), port: 56533 },
///     loglevel: Some("ERROR".into()),
///     asyncio: false,
/// };
/// let argv = args.to_argv();
/// assert_eq!(argv[1], "('spawn_child', '4165cb59-57c4-428d-8e3b-d37fd8488208')");
/// assert_eq!(argv[3], "('127.0.0.1', 56533)");
/// assert_eq!(ChildArgs::parse(argv).unwrap(), args);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildArgs {
    /// The identity the parent assigned (`--uid`).
    pub uid: Uid,
    /// Where to connect back (`--parent_addr`).
    pub parent_addr: Addr,
    /// tractor's log level name (`--loglevel`), if given.
    pub loglevel: Option<String>,
    /// `--asyncio`: run trio as a guest of asyncio (tractor only).
    pub asyncio: bool,
}

impl ChildArgs {
    /// The flags, as tractor writes them after `-m tractor._child`.
    pub fn to_argv(&self) -> Vec<String> {
        let mut argv = vec![
            "--uid".to_owned(),
            tuple_repr(&[py_str(&self.uid.name), py_str(&self.uid.uuid)]),
            "--parent_addr".to_owned(),
            addr_repr(&self.parent_addr),
        ];
        if let Some(level) = &self.loglevel {
            argv.push("--loglevel".to_owned());
            argv.push(level.clone());
        }
        if self.asyncio {
            argv.push("--asyncio".to_owned());
        }
        argv
    }

    /// Parses the flags (without the program name).
    ///
    /// # Errors
    /// A missing or malformed flag, or one tractor does not know.
    pub fn parse<I, S>(argv: I) -> Result<Self, ArgsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut argv = argv.into_iter().map(Into::into);
        let (mut uid, mut parent_addr, mut loglevel, mut asyncio) = (None, None, None, false);
        while let Some(flag) = argv.next() {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (flag.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| argv.next())
                    .ok_or_else(|| ArgsError::NoValue(name.to_owned()))
            };
            match name.as_str() {
                "--uid" => uid = Some(parse_uid(&value("--uid")?)?),
                "--parent_addr" => parent_addr = Some(parse_addr(&value("--parent_addr")?)?),
                "--loglevel" => loglevel = Some(value("--loglevel")?),
                "--asyncio" => asyncio = true,
                _ => return Err(ArgsError::Unknown(flag)),
            }
        }
        Ok(ChildArgs {
            uid: uid.ok_or(ArgsError::Missing("--uid"))?,
            parent_addr: parent_addr.ok_or(ArgsError::Missing("--parent_addr"))?,
            loglevel,
            asyncio,
        })
    }
}

fn addr_repr(addr: &Addr) -> String {
    match addr {
        Addr::Tcp { host, port } => tuple_repr(&[py_str(host), port.to_string()]),
        Addr::Uds { dir, file } => tuple_repr(&[py_str(dir), py_str(file)]),
    }
}

fn tuple_repr(items: &[String]) -> String {
    format!("({})", items.join(", "))
}

/// Python's `repr()` of a str: single quotes unless the text has a single
/// quote and no double quote; backslashes and control characters escaped.
fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// One element of a Python tuple repr.
#[derive(Debug, PartialEq)]
enum Item {
    Str(String),
    Int(i64),
}

fn parse_uid(value: &str) -> Result<Uid, ArgsError> {
    let bad = |why: &str| ArgsError::BadValue {
        flag: "--uid",
        why: why.to_owned(),
        value: value.to_owned(),
    };
    match parse_tuple(value).map_err(|w| bad(&w))?.as_slice() {
        [Item::Str(name), Item::Str(uuid)] => Ok(Uid::new(name.clone(), uuid.clone())),
        _ => Err(bad("expected ('name', 'uuid')")),
    }
}

fn parse_addr(value: &str) -> Result<Addr, ArgsError> {
    let bad = |why: &str| ArgsError::BadValue {
        flag: "--parent_addr",
        why: why.to_owned(),
        value: value.to_owned(),
    };
    match parse_tuple(value).map_err(|w| bad(&w))?.as_slice() {
        [Item::Str(host), Item::Int(port)] => Ok(Addr::Tcp {
            host: host.clone(),
            port: u16::try_from(*port).map_err(|_| bad("port out of range"))?,
        }),
        [Item::Str(dir), Item::Str(file)] => Ok(Addr::Uds {
            dir: dir.clone(),
            file: file.clone(),
        }),
        _ => Err(bad("expected ('host', port)")),
    }
}

/// Parses a flat Python tuple of str and int literals.
fn parse_tuple(text: &str) -> Result<Vec<Item>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or("not a tuple")?;
    let mut chars = inner.chars().peekable();
    let mut items = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let item = if first == '\'' || first == '"' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next().ok_or("unterminated string")? {
                    c if c == first => break,
                    '\\' => match chars.next().ok_or("unterminated escape")? {
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        't' => s.push('\t'),
                        'x' => {
                            let hex: String = chars.by_ref().take(2).collect();
                            let code =
                                u32::from_str_radix(&hex, 16).map_err(|_| "bad \\x escape")?;
                            s.push(char::from_u32(code).ok_or("bad \\x escape")?);
                        }
                        other => s.push(other),
                    },
                    c => s.push(c),
                }
            }
            Item::Str(s)
        } else {
            let mut digits = String::new();
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_digit() || *c == '-')
            {
                digits.extend(chars.next());
            }
            Item::Int(digits.parse().map_err(|_| "expected a str or an int")?)
        };
        items.push(item);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(c) => return Err(format!("unexpected {c:?}")),
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_recorded_command_line() {
        let argv = [
            "--uid",
            "('spawn_child', '4165cb59-57c4-428d-8e3b-d37fd8488208')",
            "--parent_addr",
            "('127.0.0.1', 56533)",
            "--loglevel",
            "ERROR",
        ];
        let args = ChildArgs::parse(argv).unwrap();
        assert_eq!(args.uid.name, "spawn_child");
        assert_eq!(
            args.parent_addr,
            Addr::Tcp {
                host: "127.0.0.1".into(),
                port: 56533
            }
        );
        assert_eq!(args.to_argv(), argv);
    }

    #[test]
    fn quotes_like_python() {
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_str("a'\"b"), "'a\\'\"b'");
        let uid = Uid::new("it's", "a\\b'\"\n");
        let args = ChildArgs {
            uid: uid.clone(),
            parent_addr: Addr::Tcp {
                host: "::1".into(),
                port: 1,
            },
            loglevel: None,
            asyncio: true,
        };
        assert_eq!(ChildArgs::parse(args.to_argv()).unwrap(), args);
    }

    #[test]
    fn refuses_bad_flags() {
        assert_eq!(
            ChildArgs::parse(["--parent_addr", "('h', 1)"]),
            Err(ArgsError::Missing("--uid"))
        );
        assert!(matches!(
            ChildArgs::parse(["--uid", "('a',)", "--parent_addr", "('h', 1)"]),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            ChildArgs::parse(["--uid", "('a', 'b')", "--parent_addr", "('h', 70000)"]),
            Err(ArgsError::BadValue { .. })
        ));
        assert!(matches!(
            ChildArgs::parse(["--what"]),
            Err(ArgsError::Unknown(_))
        ));
        assert!(matches!(
            ChildArgs::parse(["--uid"]),
            Err(ArgsError::NoValue(_))
        ));
    }
}
