//! Payload values rendered for humans, like a Python `repr`.

/// Renders a dynamic value the way tractor shows it in errors:
/// `'text'`, `None`, `True`, `[1, 2]`, `{'x': 0}`, `b'..'`.
pub(crate) fn python_repr(v: &rmpv::Value) -> String {
    use rmpv::Value as V;
    match v {
        V::Nil => "None".to_owned(),
        V::Boolean(true) => "True".to_owned(),
        V::Boolean(false) => "False".to_owned(),
        V::Integer(i) => i.to_string(),
        V::F32(x) => float(f64::from(*x)),
        V::F64(x) => float(*x),
        V::String(s) => match s.as_str() {
            Some(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            None => "<invalid utf-8 str>".to_owned(),
        },
        V::Binary(b) if b.len() > 32 => format!("<{} bytes>", b.len()),
        V::Binary(b) => {
            let body: String = b
                .iter()
                .map(|c| match c {
                    b' '..=b'~' if *c != b'\'' && *c != b'\\' => (*c as char).to_string(),
                    _ => format!("\\x{c:02x}"),
                })
                .collect();
            format!("b'{body}'")
        }
        V::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        V::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}: {}", python_repr(k), python_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        V::Ext(t, d) => format!("<ext {t}: {} bytes>", d.len()),
    }
}

/// The Python type name of a dynamic value, as `type(v).__name__` gives it.
pub(crate) fn python_type(v: &rmpv::Value) -> &'static str {
    use rmpv::Value as V;
    match v {
        V::Nil => "NoneType",
        V::Boolean(_) => "bool",
        V::Integer(_) => "int",
        V::F32(_) | V::F64(_) => "float",
        V::String(_) => "str",
        V::Binary(_) => "bytes",
        V::Array(_) => "list",
        V::Map(_) => "dict",
        V::Ext(..) => "msgspec.msgpack.Ext",
    }
}

fn float(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        x.to_string()
    }
}
